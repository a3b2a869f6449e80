"""The attention analysis on models whose token count changes between layers (PSViT, EDIT with pooling) and whose
layers share attention maps: values checked against recomputation from the weights and analytic cases."""
import math

import pytest
import timm
import torch

from editvit.analysis import (AttentionStatistics, UnsupportedModelError, analyze_model, extract_attention,
                              load_images, plot_sequential_maps, self_attention_rollout, sequential_attention_maps,
                              write_metrics)
from editvit.models.layers.token_pooling import TokenPooling

from .common import attention_summary, zero_query_key

# 8x8 = 64 patches, three stages of two layers on 8x8 -> 6x6 -> 4x4 tokens, the second of each pair sharing
PS = dict(img_size=32, patch_size=4, embed_dim=32, num_heads=2, depths=(2, 2, 2), num_classes=10,
          share_attention=(False, True) * 3)


def psvit(pooling: str = '2d', num_tokens=(64, 36, 16), **kwargs) -> torch.nn.Module:
    name = 'psvit_2d_tiny' if pooling == '2d' else 'psvit_1d_tiny'
    torch.manual_seed(0)
    return timm.create_model(name, **{**PS, 'num_tokens': num_tokens, 'pooling': pooling, **kwargs}).eval()


def own_attention(attn: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(Dh)) from a MapAttention's qkv weights on x (B, N, D): (B, H, N, N)."""
    B, N, D = x.shape
    H = attn.num_heads
    q, k, _ = attn.qkv(x).reshape(B, N, 3, H, D // H).permute(2, 0, 3, 1, 4)
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(D // H), dim=-1)


def test_psvit_maps_equal_recomputation_through_the_pooling_matrices():
    model = psvit()
    x = torch.randn(2, 3, 32, 32)
    maps = extract_attention(model, x)
    assert maps.num_tokens == [65, 65, 37, 37, 17, 17]
    assert maps.num_prefix_tokens == 1 and maps.has_cls and maps.grid_size == (8, 8)
    assert maps.shared == [False, True] * 3
    assert maps.token_grids == [(8, 8), (8, 8), (6, 6), (6, 6), (4, 4), (4, 4)]
    assert maps.is_pooled == [False, False, True, True, True, True]
    assert [T is not None for T in maps.pooling] == [False, False, True, False, True, False]
    _, inter = model.forward_with_intermediates(x)
    with torch.no_grad():
        h = model._embed(x)  # (B, 65, D)
        for i, block in enumerate(model.blocks):
            if maps.pooling[i] is not None:  # the recorded matrix reproduces the pooled tokens the block got
                h = maps.pooling[i].float() @ h  # (B, N_l, D)
            torch.testing.assert_close(maps.attention[i], inter['attention'][i])
            if block.share:  # exactly the map its predecessor used
                assert torch.equal(maps.attention[i], maps.attention[i - 1])
            else:
                torch.testing.assert_close(maps.attention[i], own_attention(block.attn, block.norm1(h)))
            h, _ = block(h, maps.attention[i - 1] if block.share else None)
            torch.testing.assert_close(maps.tokens[i], h)


@pytest.mark.parametrize('pooling,num_tokens', [('2d', (64, 36, 16)), ('1d', (64, 40, 20))])
def test_pooling_matrix_is_the_token_pooling(pooling, num_tokens):
    pool = TokenPooling(pooling, num_tokens[1], num_prefix_tokens=1)
    x = torch.randn(3, 1 + num_tokens[0], 5)
    T = pool.matrix(1 + num_tokens[0])  # (1+N', 1+N)
    assert T.shape == (1 + num_tokens[1], 1 + num_tokens[0])
    torch.testing.assert_close(T.float() @ x, pool(x))
    torch.testing.assert_close(T.sum(-1), torch.ones(T.shape[0], dtype=T.dtype))  # averages: rows sum to 1
    assert T[0, 0] == 1 and T[0, 1:].abs().sum() == 0 and T[1:, 0].abs().sum() == 0  # [CLS] passes through


def test_uniform_psvit_attention_gives_the_analytic_values_per_layer():
    model = psvit()
    zero_query_key(model)
    out = attention_summary(model, torch.randn(2, 3, 32, 32))
    assert out['num_tokens'] == 65 and out['layer_tokens'] == [65, 65, 37, 37, 17, 17]
    assert out['uniform_entropy'] == pytest.approx(sum(math.log(n) for n in (65, 65, 37, 37, 17, 17)) / 6)
    for layer, N in zip(out['layers'], (65, 65, 37, 37, 17, 17)):
        assert layer['num_tokens'] == N and layer['uniform_entropy'] == pytest.approx(math.log(N))
        assert layer['entropy'] == pytest.approx(math.log(N))
        assert layer['cls_attention'] == pytest.approx(1 / N) and layer['sink_ratio'] == pytest.approx(1.0)
        assert layer['max_token_ratio'] == pytest.approx(1.0) and layer['token_sink_rate'] == 0.0
        assert layer['cls_query_entropy'] == pytest.approx(math.log(N - 1))
    assert [layer['attention_shared'] for layer in out['layers']] == [False, True] * 3
    assert out['summary']['mean_entropy'] == pytest.approx(out['uniform_entropy'])


def test_pooled_maps_are_drawn_on_the_input_grid_keeping_the_attention():
    model = psvit(num_tokens=(64, 16, 16))  # 8x8 -> 4x4: each pooled token averages a 2x2 window of patches
    zero_query_key(model)
    maps = extract_attention(model, torch.randn(1, 3, 32, 32))
    values, label = sequential_attention_maps(maps)  # (1, L, 8, 8)
    assert values.shape == (1, 6, 8, 8) and label == 'attention of [CLS] to patches'
    torch.testing.assert_close(values[0, 0], torch.full((8, 8), 1 / 65))  # uniform over 1 + 64 tokens
    torch.testing.assert_close(values[0, 2:], torch.full((4, 8, 8), 1 / 17 / 4))  # 1/17 spread over 4 patches
    # attention to any shape of pooled window keeps its total: the [CLS] row's patch share
    model = psvit(num_tokens=(64, 36, 16))
    maps = extract_attention(model, torch.randn(2, 3, 32, 32))
    values, _ = sequential_attention_maps(maps)
    patch_share = torch.stack([a[:, :, 0, 1:].sum(-1).mean(1) for a in maps.attention], 1)  # (B, L)
    torch.testing.assert_close(values.sum((-1, -2)), patch_share)


def test_rollout_through_pooling_stays_a_distribution_over_the_input_tokens():
    maps = extract_attention(psvit(num_tokens=(64, 36, 16)), torch.randn(2, 3, 32, 32))
    rollout = self_attention_rollout(maps.attention, maps.pooling)
    assert [r.shape for r in rollout] == [(2, n, 65) for n in (65, 65, 37, 37, 17, 17)]
    for r in rollout:
        torch.testing.assert_close(r.sum(-1), torch.ones(r.shape[:2]))
        assert torch.all(r >= 0)
    values, label = sequential_attention_maps(maps, 'rollout')
    assert values.shape == (2, 6, 8, 8) and label == 'attention rollout of [CLS]'
    torch.testing.assert_close(values.flatten(2), torch.stack([r[:, 0, 1:] for r in rollout], 1))


def test_one_d_pooling_names_pooled_tokens_without_a_grid():
    maps = extract_attention(psvit('1d', num_tokens=(64, 40, 20)), torch.randn(2, 3, 32, 32))
    assert maps.token_grids == [(8, 8), (8, 8), None, None, None, None]
    sink = torch.zeros_like(maps.attention[4])  # (B, H, 21, 21)
    sink[..., 1 + 7] = 1  # plant a sink: every query of layer 5 attends to pooled token 7 only
    maps.attention[4] = sink
    stats = AttentionStatistics()
    stats.update(maps)
    layers = stats.summary()['layers']
    assert layers[4]['max_token'] == 'pooled(7)' and layers[4]['max_token_attention'] == pytest.approx(1.0)
    assert layers[0]['max_token'].startswith(('patch(', 'cls'))


def test_edit_with_pooling_and_sharing_in_its_encoder():
    model = timm.create_model('edit_tiny_ps_patch16_224', img_size=32, patch_size=4, embed_dim=32, depth=4,
                              num_heads=2, num_classes=10, num_tokens=(64, 16, 16, 4),
                              share_attention=(False, False, True, False)).eval()
    x = torch.randn(2, 3, 32, 32)
    maps = extract_attention(model, x)
    assert maps.num_tokens == [64, 16, 16, 4] and maps.num_prefix_tokens == 0 and not maps.has_cls
    assert maps.shared == [False, False, True, False] and maps.token_grids == [(8, 8), (4, 4), (4, 4), (2, 2)]
    assert torch.equal(maps.attention[2], maps.attention[1])
    _, inter = model.forward_with_intermediates(x)
    for i in range(4):
        torch.testing.assert_close(maps.decoder_attention[i], inter['decoder_attention'][i])
        torch.testing.assert_close(maps.tokens[i], inter['tokens'][i])
    values, label = sequential_attention_maps(maps)
    assert label == 'decoder attention of [CLS] to patches' and values.shape == (2, 4, 8, 8)
    torch.testing.assert_close(values.sum((-1, -2)), torch.stack(
        [a[..., 1:].sum(-1).mean(1) for a in inter['decoder_attention']], 1))
    rollout, _ = sequential_attention_maps(maps, 'rollout')
    assert rollout.shape == (2, 4, 8, 8) and torch.all(rollout.sum((-1, -2)) < 1)


def test_token_counts_changed_by_something_else_are_refused():
    model = psvit()

    class Truncate(torch.nn.Module):  # not a TokenPooling: the analysis cannot map its tokens to patches
        def forward(self, x, num_tokens=None):
            return x[:, :1 + num_tokens]

    model.token_pools[1] = Truncate()
    with pytest.raises(UnsupportedModelError, match='layer 2 attends over 37 tokens.*TokenPooling only'):
        extract_attention(model, torch.randn(1, 3, 32, 32))
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_psvit_analysis_writes_metrics_and_maps(image_dir, tmp_path):
    images = load_images([image_dir])
    analysis = analyze_model(psvit(), images, name='psvit_tiny', batch_size=2)
    assert analysis.maps.shape == (len(images), 6, 8, 8)
    assert analysis.block.shape == (6, 16, 16)
    assert [layer['num_tokens'] for layer in analysis.metrics['layers']] == [65, 65, 37, 37, 17, 17]
    paths = write_metrics([analysis.metrics], tmp_path)
    rows = paths[1].read_text().splitlines()
    assert rows[0].startswith('model,layer,head,num_tokens,attention_shared,')
    assert rows[1].startswith('psvit_tiny,1,mean,65,False,')
    out = plot_sequential_maps([analysis], 0, tmp_path / 'map.png')
    assert out.stat().st_size > 1000
