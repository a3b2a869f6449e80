"""The analysis end to end: images, rollout, sequential maps, metrics files, PNGs and the `editvit analyze` CLI."""
import csv
import json
import math
import re

import pytest
import timm
import torch
from PIL import Image

from editvit import create_model
from editvit.analysis import (AttentionMaps, analyze_model,
                              extract_attention, load_images, plot_blocks, plot_sequential_maps, plot_sink,
                              sequential_attention_maps, self_attention_rollout, write_metrics)
from editvit.analysis.plots import DPI, block_figure_size, maps_figure_size, sink_figure_size
from editvit.cli import main
from editvit.errors import ConfigError, DataError
from editvit.weights import save_model

from .common import tiny_edit


def png_size(path):
    with Image.open(path) as image:
        return image.size


def test_default_images_are_the_scikit_image_samples():
    names = [name for name, _ in load_images(None)]
    assert names == ['chelsea', 'coffee', 'astronaut', 'rocket']


def test_folder_images_sorted_and_bad_image_named(image_dir, tmp_path):
    assert [name for name, _ in load_images([image_dir])] == ['a_gradient', 'b_noise']
    broken = tmp_path / 'broken.jpg'
    broken.write_bytes(b'not a jpeg at all')
    with pytest.raises(DataError, match='broken.jpg'):
        load_images([image_dir / 'a_gradient.png', broken])
    with pytest.raises(FileNotFoundError, match='missing.png'):
        load_images([tmp_path / 'missing.png'])


def test_unknown_model_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown model 'deit3_smal_patch16_224'.*deit3_small_patch16_224"):
        create_model('deit3_smal_patch16_224')


def test_rollout_of_uniform_attention_is_known():
    # uniform attention over N tokens: Abar = 0.5 U + 0.5 I; U @ anything row-stochastic = U, so
    # R_l = (1 - 0.5^l) U + 0.5^l I
    N, L = 5, 3
    attention = [torch.full((1, 2, N, N), 1 / N)] * L
    rollout = self_attention_rollout(attention)
    for layer in range(L):
        keep = 0.5 ** (layer + 1)
        torch.testing.assert_close(rollout[layer][0], (1 - keep) / N * torch.ones(N, N) + keep * torch.eye(N))


def test_sequential_maps_read_the_cls_row_and_the_edit_decoder():
    A = torch.rand(2, 3, 2, 1 + 4, 1 + 4).softmax(-1)  # [CLS] + 2x2 patches
    maps = AttentionMaps(attention=A, tokens=torch.randn(2, 3, 5, 8), num_prefix_tokens=1, has_cls=True,
                         grid_size=(2, 2))
    values, label = sequential_attention_maps(maps)
    torch.testing.assert_close(values, A[:, :, :, 0, 1:].mean(2).reshape(2, 3, 2, 2))
    assert label == 'attention of [CLS] to patches'
    model = tiny_edit(depth=2)
    x = torch.randn(1, 3, 32, 32)
    values, label = sequential_attention_maps(extract_attention(model, x))
    torch.testing.assert_close(values, model.decoder_attention(x)[:, :, 1:].reshape(1, 2, 4, 4))
    assert label == 'decoder attention of [CLS] to patches'
    rollout, label = sequential_attention_maps(extract_attention(model, x), 'rollout')
    assert rollout.shape == (1, 2, 4, 4) and label == 'attention rollout of [CLS]'
    assert torch.all(rollout.sum((-1, -2)) < 1)  # the rest stays on the learned [CLS] c_0


@pytest.fixture(scope='module')
def two_analyses(image_dir):
    images = load_images([image_dir])
    edit = analyze_model(tiny_edit(depth=2), images, name='edit_tiny')
    vit = analyze_model(timm.create_model('deit3_small_patch16_224', img_size=32, patch_size=8, depth=3,
                                          embed_dim=32, num_heads=2), images, name='deit3_tiny', batch_size=1)
    return edit, vit


def test_metrics_json_and_csv(two_analyses, tmp_path):
    edit, vit = two_analyses
    write_metrics([edit.metrics, vit.metrics], tmp_path)
    doc = json.loads((tmp_path / 'metrics.json').read_text())
    assert doc['model'] == 'edit_tiny' and len(doc['layers']) == 2 and doc['num_images'] == 2
    assert doc['compare']['model'] == 'deit3_tiny' and len(doc['compare']['layers']) == 3
    assert set(doc['not_applicable']) == {'cls_attention', 'other_attention', 'sink_ratio', 'cls_sink_rate'}
    for key in ('cls_attention', 'other_attention', 'sink_ratio', 'max_token_attention', 'entropy',
                'cls_sink_rate', 'token_sink_rate', 'max_norm_ratio', 'high_norm_fraction'):
        assert key in doc['compare']['layers'][0]
    assert 'cls_query_entropy_slope' in doc['summary']
    with open(tmp_path / 'metrics.csv') as f:
        rows = list(csv.DictReader(f))
    # per model and layer: a 'mean' row and one row per head (EDIT: 3 encoder heads and 1 decoder head; ViT: 2)
    assert len(rows) == 2 * (1 + 3 + 1) + 3 * (1 + 2)
    decoder = [r for r in rows if r['head'] == 'decoder0']
    assert [float(r['cls_query_entropy']) for r in decoder] == pytest.approx(
        [layer['cls_query_entropy'] for layer in doc['layers']])
    vit_layer1 = [r for r in rows if r['model'] == 'deit3_tiny' and r['layer'] == '1' and r['head'] == 'mean'][0]
    assert float(vit_layer1['sink_ratio']) == pytest.approx(doc['compare']['layers'][0]['sink_ratio'])
    assert float(vit_layer1['entropy']) <= math.log(17) + 1e-6


def test_pngs_are_written_at_their_size(two_analyses, tmp_path):
    edit, vit = two_analyses
    paths = [plot_sink([edit, vit], tmp_path / 'sink.png'), plot_blocks([edit, vit], tmp_path / 'blocks.png'),
             plot_sequential_maps([edit, vit], 1, tmp_path / 'maps' / 'b_noise.png'),
             plot_sequential_maps([vit], 0, tmp_path / 'one.png')]
    sizes = [sink_figure_size(2), block_figure_size(2, 3), maps_figure_size(2, 3), maps_figure_size(1, 3)]
    for path, (w, h) in zip(paths, sizes):
        assert path.stat().st_size > 10_000
        assert png_size(path) == (round(w * DPI), round(h * DPI))
    # the crop and 3 layer panels of 160 px in one row, 8 px gaps (16 around the crop), 12 + 110 px margins;
    # 62 px title, 36 px model name, 24 px layer labels + 160 px panels, 8 px below
    assert png_size(tmp_path / 'one.png') == (12 + 160 + 16 + 3 * 168 - 8 + 110, 62 + 36 + 24 + 160 + 8)


def test_cli_end_to_end_with_compare_and_checkpoint(image_dir, tmp_path, capsys):
    # a DeiT-Tiny with zero query/key weights attends uniformly, so its sink ratio is exactly 1:
    # this proves the checkpoint was loaded
    vit = timm.create_model('deit_tiny_patch16_224')
    with torch.no_grad():
        for block in vit.blocks:
            block.attn.qkv.weight[:2 * 192] = 0
            block.attn.qkv.bias[:2 * 192] = 0
    save_model(vit, tmp_path / 'uniform.safetensors')
    out = tmp_path / 'out'
    code = main(['analyze', '--model', 'edit_tiny_patch16_224', '--compare', 'deit_tiny_patch16_224',
                 '--checkpoint2', str(tmp_path / 'uniform.safetensors'), '--images', str(image_dir),
                 '--output', str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert 'not applicable: sink_ratio' in printed and 'sink ratio [CLS]/other: mean 1.00' in printed
    doc = json.loads((out / 'metrics.json').read_text())
    assert all(layer['sink_ratio'] == pytest.approx(1.0, abs=1e-5) for layer in doc['compare']['layers'])
    assert doc['compare']['summary']['mean_entropy'] == pytest.approx(math.log(197), abs=1e-5)
    for name in ('metrics.csv', 'attention_sink.png', 'attention_blocks.png', 'maps/a_gradient.png',
                 'maps/b_noise.png'):
        assert (out / name).stat().st_size > 0
    assert png_size(out / 'maps' / 'a_gradient.png') == tuple(round(v * DPI) for v in maps_figure_size(2, 12))


@pytest.mark.parametrize('argv,message', [
    (['--model', 'no_such_vit'], "unknown model 'no_such_vit'"),
    (['--model', 'edit_tiny_patch16_224', '--checkpoint2', 'x.pt'], '--checkpoint2.* need --compare'),
    (['--model', 'edit_tiny_patch16_224', '--images', 'BROKEN'], 'cannot decode image .*broken.png'),
    (['--model', 'resnet18'], 'ResNet has no `blocks` of attention layers'),
])
def test_cli_errors_are_one_clear_line(argv, message, tmp_path, capsys):
    broken = tmp_path / 'broken.png'
    broken.write_bytes(b'\x89PNG but truncated')
    argv = [str(broken) if a == 'BROKEN' else a for a in argv]
    assert main(['analyze', *argv, '--output', str(tmp_path / 'out')]) == 2
    err = capsys.readouterr().err
    assert err.startswith('editvit analyze: error:') and len(err.strip().splitlines()) == 1
    assert re.search(message, err)
