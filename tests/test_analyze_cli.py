"""`editvit analyze` on the models users bring: kwargs from the command line, run folders, real pretrained ViTs."""
import json
import os
from pathlib import Path

import pytest
import timm
import torch
import yaml

from editvit.analysis import run_analysis
from editvit.analysis.model_spec import ModelSpec
from editvit.cli import main
from editvit.weights import save_model

KWARGS = dict(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, num_classes=7)
DINOV2_FILE = 'dinov2_vits14_imgfocus.safetensors'


def _run_folder(tmp_path: Path) -> Path:
    run = tmp_path / 'run'
    run.mkdir()
    torch.manual_seed(0)
    save_model(timm.create_model('edit_tiny_patch16_224', **KWARGS), run / 'model.safetensors')
    config = dict(model='edit_tiny_patch16_224', model_kwargs={k: v for k, v in KWARGS.items() if k != 'num_classes'})
    (run / 'config.yaml').write_text(yaml.safe_dump(config))
    return run


def test_model_kwargs_on_the_command_line_read_a_small_checkpoint(tmp_path, capsys):
    run = _run_folder(tmp_path)
    kwargs = [f'{k}={v}' for k, v in KWARGS.items()]
    assert main(['analyze', '--model', 'edit_tiny_patch16_224', '--model-kwargs', *kwargs, '--checkpoint',
                 str(run / 'model.safetensors'), '--no-plots', '--threads', '1', '--output', str(tmp_path / 'a')]) == 0
    out = capsys.readouterr().out
    assert '32x32 px, 16 patches' in out and 'checkpoint' in out
    doc = json.loads((tmp_path / 'a' / 'metrics.json').read_text())
    assert doc['input_size'] == [32, 32] and doc['num_patches'] == 16 and doc['model_kwargs']['depth'] == 2


def test_run_folder_is_analysed_with_its_own_config_and_weights(tmp_path, capsys):
    run = _run_folder(tmp_path)
    assert main(['analyze', '--run', str(run), '--no-plots', '--threads', '1', '--output', str(tmp_path / 'b')]) == 0
    doc = json.loads((tmp_path / 'b' / 'metrics.json').read_text())
    assert doc['model'] == 'edit_tiny_patch16_224 (run)' and doc['model_kwargs']['num_classes'] == 7
    assert doc['weights'].endswith('model.safetensors')


def test_run_folder_without_weights_is_a_clear_error(tmp_path, capsys):
    (tmp_path / 'empty').mkdir()
    assert main(['analyze', '--run', str(tmp_path / 'empty'), '--output', str(tmp_path / 'c')]) == 2
    assert 'is not a run folder' in capsys.readouterr().err


def test_checkpoint_at_another_resolution_is_analysed_at_its_own_and_says_so(tmp_path):
    run = _run_folder(tmp_path)
    spec = ModelSpec('edit_tiny_patch16_224', run / 'model.safetensors',
                     {k: v for k, v in KWARGS.items() if k != 'img_size'})
    analysis, = run_analysis(spec, tmp_path / 'd', plots=False)
    assert analysis.metrics['input_size'] == [32, 32]
    assert 'created at 32 px' in analysis.metrics['notes'][0]
    spec.model_kwargs['img_size'] = 48
    analysis, = run_analysis(spec, tmp_path / 'e', plots=False)
    assert analysis.metrics['input_size'] == [48, 48] and 'was resampled' in analysis.metrics['notes'][0]


def _dinov2() -> Path:
    folder = os.environ.get('EDITVIT_MODELS')
    if not folder or not (Path(folder) / DINOV2_FILE).is_file():
        pytest.skip(f'set EDITVIT_MODELS to a folder holding {DINOV2_FILE} to check the real model')
    return Path(folder) / DINOV2_FILE


def test_real_dinov2_has_a_cls_sink_in_every_layer_and_cli_equals_api(tmp_path, capsys):
    path = _dinov2()
    assert main(['analyze', '--model', 'vit_small_patch14_dinov2', '--model-kwargs', 'img_size=224',
                 'num_classes=0', '--checkpoint', str(path), '--no-plots', '--threads', '1',
                 '--output', str(tmp_path / 'cli')]) == 0
    cli = json.loads((tmp_path / 'cli' / 'metrics.json').read_text())
    assert cli['input_size'] == [224, 224] and cli['num_patches'] == 256 and cli['notes'] == []
    ratios = [layer['sink_ratio'] for layer in cli['layers']]
    assert len(ratios) == 12 and min(ratios) > 5
    # no high-norm outlier tokens: every patch norm within 2x of its image's median, nothing flagged
    assert all(layer['high_norm_fraction'] == 0.0 for layer in cli['layers'])
    assert all(1 < layer['max_norm_ratio_peak'] < 2.5 for layer in cli['layers'])
    assert cli['summary']['layers_with_massive_activations'] == 0
    # most heads give some token (mostly [CLS]) over 10x its uniform share; few give [CLS] over 0.3
    assert cli['summary']['token_sink_rate'] > 0.5 and cli['summary']['cls_sink_rate'] < 0.1
    api, = run_analysis(ModelSpec('vit_small_patch14_dinov2', path, dict(img_size=224, num_classes=0)),
                        tmp_path / 'api', plots=False)
    assert [layer['sink_ratio'] for layer in api.metrics['layers']] == pytest.approx(ratios, rel=1e-5)


def test_random_dinov2_has_no_sink(tmp_path):
    _dinov2()
    torch.manual_seed(0)
    analysis, = run_analysis(ModelSpec('vit_small_patch14_dinov2', None, dict(img_size=224, num_classes=0)),
                             tmp_path / 'random', plots=False)
    ratios = [layer['sink_ratio'] for layer in analysis.metrics['layers']]
    assert all(0.5 < r < 2 for r in ratios), ratios
    assert all(layer['high_norm_fraction'] == 0.0 for layer in analysis.metrics['layers'])
    s = analysis.metrics['summary']
    assert s['cls_sink_rate'] == s['token_sink_rate'] == 0.0 and s['layers_with_massive_activations'] == 0


def test_a_run_trained_without_layerscale_is_analysed_and_evaluated_as_it_was_trained(tmp_path, capsys):
    from editvit.analysis.model_spec import ModelSpec, build_model
    from editvit.train import TrainConfig, train
    train(TrainConfig(model='edit_tiny_patch16_224', layer_scale_init=0, dataset='synthetic', num_classes=4,
                      model_kwargs=dict(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2),
                      synthetic_samples=32, output=str(tmp_path / 'run'), epochs=1, batch_size=16, warmup_epochs=0,
                      crop='src', three_augment=False, color_jitter=0.0, mixup=0.0, cutmix=0.0, num_workers=0,
                      progress=False))
    spec = ModelSpec.from_run(tmp_path / 'run')
    assert spec.model_kwargs['init_values'] == 0
    model, _ = build_model(spec)  # loads strictly: no LayerScale gammas expected, none missing
    assert not any('ls1.gamma' in k for k in model.state_dict())
    capsys.readouterr()
    assert main(['eval', '--run', str(tmp_path / 'run'), '--num-workers', '0']) == 0  # loads strictly as well
    result = json.loads(capsys.readouterr().out)
    assert result['top1'] == pytest.approx(json.loads((tmp_path / 'run' / 'metrics.json').read_text())['val_top1'],
                                           abs=1e-3)
