"""Test-time interventions from the command line: [CLS] removal, register neurons and test-time registers."""
import json

import pytest
import timm
import torch

from editvit.analysis import extract_attention
from editvit.analysis import sink_measures as M
from editvit.analysis.register_neurons import find_register_neurons, with_test_time_registers
from editvit.cli import main
from editvit.errors import ConfigError
from editvit.weights import save_model

from .common import tiny_edit

TINY = ['img_size=32', 'patch_size=8', 'depth=2', 'embed_dim=32', 'num_heads=2']


def _analyze(tmp_path, name, *args, model='deit3_small_patch16_224', kwargs=TINY):
    argv = ['analyze', '--model', model, '--model-kwargs', *kwargs, '--no-plots', '--threads', '1',
            '--output', str(tmp_path / name), *args]
    assert main(argv) == 0
    return json.loads((tmp_path / name / 'metrics.json').read_text())


def test_remove_cls_mask_from_the_command_line(tmp_path, capsys):
    doc = _analyze(tmp_path, 'mask', '--remove-cls', 'mask')
    assert 'intervention: [CLS] masked as a key in every layer' in capsys.readouterr().out
    assert doc['remove_cls'] == 'mask' and doc['model'].endswith('without [CLS] (mask)')
    assert doc['has_cls'] and all(layer['cls_attention'] == 0.0 for layer in doc['layers'])
    assert doc['summary']['cls_sink_rate'] == 0.0


def test_remove_cls_drop_keeps_the_registers_and_is_recorded(tmp_path, capsys):
    doc = _analyze(tmp_path, 'drop', '--remove-cls', 'drop', kwargs=[*TINY, 'reg_tokens=2'])
    assert 'dropped from the sequence' in capsys.readouterr().out
    assert doc['remove_cls'] == 'drop' and not doc['has_cls'] and doc['num_prefix_tokens'] == 2
    assert doc['num_tokens'] == 2 + 16 and 'sink_ratio' in doc['not_applicable']
    plain = _analyze(tmp_path, 'plain')
    assert plain['remove_cls'] is None and plain['has_cls']


def test_remove_cls_of_a_model_without_cls_is_one_clear_line(tmp_path, capsys):
    argv = ['analyze', '--model', 'edit_tiny_patch16_224', '--model-kwargs', *TINY, '--remove-cls', 'mask',
            '--no-plots', '--output', str(tmp_path / 'x')]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert 'no [CLS] token in its self-attention to remove' in err and len(err.strip().splitlines()) == 1


def planted_register_neuron(j: int = 6, n: int = 17) -> torch.nn.Module:
    """A tiny ViT whose MLP unit n of block 0 fires on patch j only and writes a large vector there.

    Every patch carries 10 in one dimension of its position embedding: patch j in dimension 0, the others in
    dimension 1 (the patch embedding writes neither, block 0's attention not dimension 0), so all patch norms are
    about 10 and after LayerNorm dimension 0 is about sqrt(D) = 5.7 on patch j and about -0.2 elsewhere. Unit
    n = GELU(10 x_0 - 40) is then about 17 on patch j and 0 elsewhere, and fc2 adds 10 x that along a unit vector:
    patch j's norm becomes ~15x the median in every later layer, a high-norm outlier made by one neuron.
    """
    torch.manual_seed(0)
    model = timm.create_model('vit_small_patch16_224', img_size=32, patch_size=8, depth=2, embed_dim=32, num_heads=2,
                              num_classes=0)
    block = model.blocks[0]
    with torch.no_grad():
        model.patch_embed.proj.weight[:2] = 0
        model.patch_embed.proj.bias[:2] = 0
        model.pos_embed[..., :2] = 0
        model.pos_embed[0, 1:, 1] = 10  # [CLS] first
        model.pos_embed[0, 1 + j, :2] = torch.tensor([10.0, 0.0])
        model.cls_token[..., :2] = 0
        block.attn.proj.weight[0] = 0
        block.attn.proj.bias[0] = 0
        block.mlp.fc1.weight[n] = 0
        block.mlp.fc1.weight[n, 0] = 10
        block.mlp.fc1.bias[n] = -40
        block.mlp.fc2.weight[:, n] = 10 * torch.nn.functional.normalize(torch.randn(32), dim=0)
    return model


def test_planted_register_neuron_is_found_and_clean_models_have_none():
    x = torch.randn(3, 3, 32, 32)
    torch.manual_seed(0)
    clean = timm.create_model('vit_small_patch16_224', img_size=32, patch_size=8, depth=2, embed_dim=32,
                              num_heads=2, num_classes=0)
    found = find_register_neurons(clean, [x])
    assert found.neurons == [] and found.images_with_outliers == 0
    found = find_register_neurons(planted_register_neuron(), [x[:2], x[2:]], top_k=3)
    assert found.images_with_outliers == 3 and found.outlier_tokens == 1.0 and found.outlier_layer == 1
    top = found.neurons[0]
    assert (top.layer, top.neuron) == (0, 17) and top.concentration == pytest.approx(16.0, rel=1e-3)  # 0 elsewhere
    assert all(n.score < top.score / 10 for n in found.neurons[1:])


def test_test_time_register_takes_the_outlier_off_the_patch():
    model, x = planted_register_neuron(), torch.randn(2, 3, 32, 32)
    found = find_register_neurons(model, [x], top_k=1)
    before = extract_attention(model, x)
    assert M.high_norm_tokens(before.tokens[1][:, 1:]).nonzero()[:, 1].tolist() == [6, 6]
    with with_test_time_registers(model, found, num_registers=1):
        after = extract_attention(model, x)
        assert model.num_prefix_tokens == 2
    assert after.num_prefix_tokens == 2 and after.num_tokens == [18, 18]  # [CLS], the register, 16 patches
    for tokens in after.tokens:
        assert not M.high_norm_tokens(tokens[:, 2:]).any()
        assert bool((tokens[:, 1].norm(dim=-1) > 10 * tokens[:, 2:].norm(dim=-1).median()).all())  # on the register
    assert model.num_prefix_tokens == 1 and '_pos_embed' not in vars(model)
    torch.testing.assert_close(extract_attention(model, x).tokens[1], before.tokens[1], rtol=0, atol=0)


def test_test_time_registers_from_the_command_line(tmp_path, capsys):
    save_model(planted_register_neuron(), tmp_path / 'planted.safetensors')
    doc = _analyze(tmp_path, 'ttr', '--checkpoint', str(tmp_path / 'planted.safetensors'), '--test-time-registers',
                   '1', '--register-neurons', '1', model='vit_small_patch16_224', kwargs=[*TINY, 'num_classes=0'])
    out = capsys.readouterr().out
    assert '1 register neurons in layer(s) 1, from outlier tokens in 4/4 images at layer 2' in out
    assert 'high-norm tokens 0.062 -> 0.000' in out
    t = doc['test_time_registers']
    assert t['num_registers'] == 1 and [(n['layer'], n['neuron']) for n in t['neurons']] == [(1, 17)]
    assert [layer['high_norm_fraction'] for layer in doc['layers']] == [1 / 16, 1 / 16]
    assert [layer['high_norm_fraction'] for layer in t['after']['layers']] == [0.0, 0.0]
    assert t['after']['num_prefix_tokens'] == 2 and t['after']['layers'][0]['num_tokens'] == 18


def test_register_neurons_of_edit_and_no_test_time_registers_for_it():
    model = tiny_edit(depth=2)
    found = find_register_neurons(model, [torch.randn(2, 3, 32, 32)])
    assert found.outlier_layer == 1 and found.num_images == 2
    with pytest.raises(ConfigError, match='test-time registers join the token sequence of a timm VisionTransformer'):
        with with_test_time_registers(model, found):
            pass


@pytest.mark.parametrize('args, message', [
    (['--register-neurons', '3'], '--register-neurons K needs --test-time-registers R'),
    (['--high-norm-ratio', '0.5'], '--high-norm-ratio must be above 1'),
    (['--test-time-registers', '1', '--remove-cls', 'mask'], 'separate experiments'),
])
def test_bad_intervention_options_are_one_clear_line(tmp_path, capsys, args, message):
    argv = ['analyze', '--model', 'deit3_small_patch16_224', '--model-kwargs', *TINY, '--no-plots',
            '--output', str(tmp_path / 'x'), *args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_darcet_absolute_threshold_from_the_command_line(tmp_path):
    doc = _analyze(tmp_path, 'abs', '--high-norm-threshold', '0.001')  # every token's norm is above it
    assert doc['high_norm_threshold'] == 0.001 and all(layer['high_norm_fraction'] == 1.0 for layer in doc['layers'])
    assert _analyze(tmp_path, 'ratio')['high_norm_ratio'] == 4.0
