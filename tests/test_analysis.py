"""Attention extraction and the attention-sink metrics: values checked against recomputation and analytic cases."""
import math

import pytest
import timm
import torch
from timm.layers import use_fused_attn
from timm.utils import AttentionExtract

from editvit.analysis import AttentionMaps, AttentionStatistics, UnsupportedModelError, extract_attention
from editvit.analysis import sink_measures as M

from .common import attention_summary, tiny_edit, zero_query_key

TINY = dict(img_size=32, patch_size=8, depth=2, embed_dim=32, num_heads=2, num_classes=10)


def tiny_vit(name: str = 'deit3_small_patch16_224', **kwargs) -> torch.nn.Module:
    return timm.create_model(name, **{**TINY, **kwargs})


def manual_attention(attn: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(Dh)) written out from timm Attention's weights: (B, H, N, N)."""
    B, N, D = x.shape
    H = attn.num_heads
    q, k, _ = attn.qkv(x).reshape(B, N, 3, H, D // H).permute(2, 0, 3, 1, 4)
    q, k = attn.q_norm(q), attn.k_norm(k)
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(D // H), dim=-1)


@pytest.mark.parametrize('name,kwargs', [
    ('deit3_small_patch16_224', {}),
    ('vit_small_patch16_224', dict(reg_tokens=4)),  # [CLS] + 4 registers
    ('vit_small_patch16_224', dict(qk_norm=True)),  # q_norm / k_norm are LayerNorms, not Identity
    ('deit_tiny_distilled_patch16_224', {}),  # [CLS] + distillation token
])
def test_vit_attention_equals_recomputation_from_weights(name, kwargs):
    model = tiny_vit(name, **kwargs).eval()
    x = torch.randn(2, 3, 32, 32)
    maps = extract_attention(model, x)
    prefix = model.num_prefix_tokens
    assert [a.shape for a in maps.attention] == [(2, 2, prefix + 16, prefix + 16)] * 2
    assert maps.num_prefix_tokens == prefix and maps.has_cls and maps.grid_size == (4, 4)
    with torch.no_grad():  # the forward pass by hand, block by block
        h = model.norm_pre(model._pos_embed(model.patch_embed(x)))
        for i, block in enumerate(model.blocks):
            torch.testing.assert_close(maps.attention[i], manual_attention(block.attn, block.norm1(h)))
            h = block(h)
            torch.testing.assert_close(maps.tokens[i], h)
    torch.testing.assert_close(torch.stack(maps.attention).sum(-1), torch.ones(2, 2, 2, prefix + 16))


def test_edit_encoder_and_decoder_attention_equal_recomputation():
    model = tiny_edit(depth=2).eval()
    x = torch.randn(2, 3, 32, 32)
    maps = extract_attention(model, x)
    assert [a.shape for a in maps.attention] == [(2, 3, 16, 16)] * 2  # 3 heads, 16 patches, no prefix token
    assert maps.num_prefix_tokens == 0 and not maps.has_cls
    with torch.no_grad():
        h = model.patch_embed(x) + model.pos_embed
        cls = model.cls_token.flatten(1).expand(2, -1)
        for i, block in enumerate(model.blocks):
            torch.testing.assert_close(maps.attention[i], manual_attention(block.attn, block.norm1(h)))
            h = block(h)
            # the decoder query LN(c) against keys W_k LN([c; p]) + b_k, one head, paper Sec. 3.2
            kv = model.decoder.norm(torch.cat([cls[:, None], h], 1))  # (B, 1+N, D)
            q = model.decoder.norm(cls)  # (B, D)
            a = torch.softmax((model.decoder.k(kv) @ q[..., None]).squeeze(-1) / math.sqrt(q.shape[-1]), -1)
            torch.testing.assert_close(maps.decoder_attention[i][:, 0], a)
            torch.testing.assert_close(maps.cls_query_attention()[i][:, 0], a)
            cls, _ = model.decoder(cls, h)
            torch.testing.assert_close(maps.tokens[i], h)


def test_cait_trunk_attention_is_the_talking_heads_softmax():
    model = timm.create_model('cait_xxs24_224', **TINY).eval()
    x = torch.randn(2, 3, 32, 32)
    maps = extract_attention(model, x)
    assert maps.num_prefix_tokens == 0 and not maps.has_cls  # the trunk runs on patches; [CLS] joins later
    with torch.no_grad():
        h = model.pos_drop(model.patch_embed(x) + model.pos_embed)
        block = model.blocks[0]
        y = block.norm1(h)
        q, k, _ = block.attn.qkv(y).reshape(2, 16, 3, 2, 16).permute(2, 0, 3, 1, 4)
        scores = block.attn.proj_l((q @ k.transpose(-2, -1) / 4.0).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    torch.testing.assert_close(maps.attention[0], scores.softmax(-1))


def test_extraction_leaves_fused_attention_mode_and_hooks_as_they_were():
    assert use_fused_attn()  # timm's default, which hides the attention matrix
    model = tiny_vit().train()
    model.blocks[0].eval()  # a part frozen in eval mode stays so
    assert all(b.attn.fused_attn for b in model.blocks)
    maps = extract_attention(model, torch.randn(2, 3, 32, 32))
    assert use_fused_attn() and all(b.attn.fused_attn for b in model.blocks)
    assert model.training and model.blocks[1].training and not model.blocks[0].attn.training
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    # the same maps as timm's own unfused attention, read by timm's AttentionExtract on an unfused copy
    unfused = tiny_vit()
    unfused.load_state_dict(model.state_dict())
    for b in unfused.blocks:
        b.attn.fused_attn = False
    x = torch.randn(2, 3, 32, 32)
    maps = extract_attention(model, x)
    with torch.no_grad():
        reference = AttentionExtract(unfused, method='hook')(x)
    torch.testing.assert_close(maps.attention, list(reference.values()))


def test_fused_attention_is_restored_when_the_forward_pass_fails():
    model = tiny_vit()
    with pytest.raises(Exception):
        extract_attention(model, torch.randn(1, 3, 48, 48))  # the wrong image size
    assert all(b.attn.fused_attn for b in model.blocks)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_unsupported_attention_is_named():
    model = timm.create_model('eva02_tiny_patch14_224', img_size=28, depth=1, embed_dim=32, num_heads=2)
    with pytest.raises(UnsupportedModelError, match='EvaAttention.*supported are timm Attention'):
        extract_attention(model, torch.randn(1, 3, 28, 28))


def test_uniform_attention_gives_the_analytic_values():
    model = tiny_vit()
    zero_query_key(model)
    out = attention_summary(model, torch.randn(3, 3, 32, 32))
    N = 17  # [CLS] + 16 patches
    assert out['not_applicable'] == {}
    for layer in out['layers']:
        assert layer['cls_attention'] == pytest.approx(1 / N)
        assert layer['other_attention'] == pytest.approx(1 / N)
        assert layer['sink_ratio'] == pytest.approx(1.0)
        assert layer['max_token_attention'] == pytest.approx(1 / N)
        assert layer['max_token_ratio'] == pytest.approx(1.0)
        assert layer['entropy'] == pytest.approx(math.log(N))
        assert layer['cls_sink_rate'] == layer['token_sink_rate'] == 0.0
        for head in layer['heads']:
            assert head['sink_ratio'] == pytest.approx(1.0) and head['entropy'] == pytest.approx(math.log(N))
        # the [CLS] row is uniform too: 1/N on itself, log 16 over the 16 patches
        assert layer['cls_query_to_cls'] == pytest.approx(1 / N)
        assert layer['cls_query_entropy'] == pytest.approx(math.log(16))
    assert out['uniform_entropy'] == pytest.approx(math.log(N))
    assert out['summary']['mean_sink_ratio'] == pytest.approx(1.0)


def test_uniform_edit_decoder_and_encoder():
    model = tiny_edit(depth=2)
    zero_query_key(model)
    with torch.no_grad():
        model.decoder.k.weight.zero_()  # the decoder's keys no longer depend on the token: uniform over 1+N
    out = attention_summary(model, torch.randn(2, 3, 32, 32))
    assert set(out['not_applicable']) == {'cls_attention', 'other_attention', 'sink_ratio', 'cls_sink_rate'}
    for layer in out['layers']:
        assert 'sink_ratio' not in layer
        assert layer['max_token_attention'] == pytest.approx(1 / 16)
        assert layer['entropy'] == pytest.approx(math.log(16))
        assert layer['cls_query_to_cls'] == pytest.approx(1 / 17)
        assert layer['cls_query_to_patches'] == pytest.approx(16 / 17)
        assert layer['cls_query_entropy'] == pytest.approx(math.log(16))
    assert out['summary']['cls_query_entropy_slope'] == pytest.approx(0.0, abs=1e-9)


def planted_maps(share: float, sink: int, num_prefix: int, has_cls: bool, B: int = 2) -> AttentionMaps:
    """Head 0 of every patch query gives `share` to token `sink` and the rest evenly; head 1 is uniform."""
    N = num_prefix + 16
    attention = torch.full((B, 1, 2, N, N), 1 / N)
    attention[:, :, 0] = (1 - share) / (N - 1)
    attention[:, :, 0, :, sink] = share
    tokens = torch.randn(B, 1, N, 8)
    return AttentionMaps(attention=attention, tokens=tokens, num_prefix_tokens=num_prefix, has_cls=has_cls,
                         grid_size=(4, 4))


def test_planted_cls_sink_takes_its_known_share():
    share, N = 0.6, 17
    stats = AttentionStatistics()
    stats.update(planted_maps(share, sink=0, num_prefix=1, has_cls=True))
    layer = stats.summary()['layers'][0]
    sink_head, uniform_head = layer['heads']
    other = (1 - share) / (N - 1)
    assert sink_head['cls_attention'] == pytest.approx(share)
    assert sink_head['other_attention'] == pytest.approx(other)
    assert sink_head['sink_ratio'] == pytest.approx(share / other)  # 24
    assert sink_head['entropy'] == pytest.approx(-share * math.log(share) - (1 - share) * math.log(other))
    assert sink_head['is_cls_sink'] and not uniform_head['is_cls_sink']
    assert sink_head['is_token_sink'] and not uniform_head['is_token_sink']  # 0.6 > 10 / 17
    assert uniform_head['sink_ratio'] == pytest.approx(1.0)
    # layer level: the ratio of the head-averaged attentions, and half of the heads are sinks
    cls, rest = (share + 1 / N) / 2, (other + 1 / N) / 2
    assert layer['sink_ratio'] == pytest.approx(cls / rest)
    assert layer['cls_sink_rate'] == layer['token_sink_rate'] == 0.5
    assert layer['max_token'] == 'cls'


def test_planted_patch_sink_is_found_without_cls():
    share = 0.7
    stats = AttentionStatistics()
    stats.update(planted_maps(share, sink=6, num_prefix=0, has_cls=False))  # patch 6 = row 1, column 2
    out = stats.summary()
    layer = out['layers'][0]
    assert 'cls_attention' not in layer and 'sink_ratio' in out['not_applicable']
    assert layer['heads'][0]['max_token_attention'] == pytest.approx(share)
    assert layer['heads'][0]['max_token_ratio'] == pytest.approx(share / ((1 - share) / 15))
    assert layer['max_token_attention'] == pytest.approx((share + 1 / 16) / 2)
    assert layer['max_token'] == 'patch(1,2)'
    assert layer['token_sink_rate'] == 0.5 and 'cls_sink_rate' not in layer  # 0.7 > 10 / 16


def test_register_tokens_count_as_other_tokens_and_prefix_queries_are_left_out():
    maps = planted_maps(0.6, sink=0, num_prefix=5, has_cls=True)  # [CLS] + 4 registers
    maps.attention[0][:, :, :5] = 0.5  # rows of prefix queries are ignored by every metric
    stats = AttentionStatistics()
    stats.update(maps)
    head = stats.summary()['layers'][0]['heads'][0]
    assert head['cls_attention'] == pytest.approx(0.6)
    assert head['other_attention'] == pytest.approx(0.4 / 20)  # 20 other tokens: 4 registers + 16 patches


def test_statistics_do_not_depend_on_batching():
    model = tiny_vit()
    x = torch.randn(4, 3, 32, 32)
    whole, halves = AttentionStatistics(), AttentionStatistics()
    whole.update(extract_attention(model, x))
    halves.update(extract_attention(model, x[:1]))
    halves.update(extract_attention(model, x[1:]))
    a, b = whole.summary(), halves.summary()
    assert a['num_images'] == b['num_images'] == 4
    for la, lb in zip(a['layers'], b['layers']):
        for key in ('cls_attention', 'sink_ratio', 'entropy', 'high_norm_fraction', 'cls_query_entropy'):
            assert la[key] == pytest.approx(lb[key], rel=1e-5)


def test_high_norm_fraction_counts_planted_outliers():
    torch.manual_seed(0)
    direction = torch.nn.functional.normalize(torch.randn(2, 64, 16), dim=-1)
    norms = 1 + 0.2 * torch.rand(2, 64, 1)  # ordinary tokens: norms in [1, 1.2]
    norms[0, :4] = 50.0  # 4 of 64 tokens in image 0 are artifacts
    fraction = M.high_norm_fraction(direction * norms)
    torch.testing.assert_close(fraction, torch.tensor([4 / 64, 0.0]))


def test_entropy_and_trend():
    assert float(M.attention_entropy(torch.full((5,), 0.2))) == pytest.approx(math.log(5))
    assert float(M.attention_entropy(torch.tensor([1.0, 0.0, 0.0]))) == 0.0
    assert float(M.renormalised_entropy(torch.tensor([0.1, 0.1]))) == pytest.approx(math.log(2))
    assert M.trend(torch.tensor([3.0, 2.0, 1.0])) == pytest.approx(-1.0)


def test_sink_planted_in_a_real_vit_is_measured_exactly():
    # DeiT3, one block. Patch tokens are all zero (zero patch embedding and position embedding), so their keys are
    # zero; queries are a constant b_q (W_q = 0) and W_k = I, so every query scores [CLS] at q . LN(cls) / sqrt(Dh)
    # and every patch at 0. Choosing b_q so that score = log r gives [CLS] the share r / (r + 16): sink_ratio = r.
    r = 20.0
    model = tiny_vit(depth=1)
    attn = model.blocks[0].attn
    D, Dh = 32, 16
    with torch.no_grad():
        model.patch_embed.proj.weight.zero_()
        model.patch_embed.proj.bias.zero_()
        model.pos_embed.zero_()
        c = model.blocks[0].norm1(model.cls_token[0, 0])  # (D,) the normalised [CLS]
        attn.qkv.weight[:2 * D] = torch.cat([torch.zeros(D, D), torch.eye(D)])  # W_q = 0, W_k = I
        for h in range(2):
            c_h = c[h * Dh:(h + 1) * Dh]
            attn.qkv.bias[h * Dh:(h + 1) * Dh] = c_h * math.log(r) * math.sqrt(Dh) / c_h.dot(c_h)  # b_q
        attn.qkv.bias[D:2 * D] = 0  # b_k
    layer = attention_summary(model, torch.randn(2, 3, 32, 32))['layers'][0]
    assert layer['cls_attention'] == pytest.approx(r / (r + 16), rel=1e-4)
    assert layer['other_attention'] == pytest.approx(1 / (r + 16), rel=1e-4)
    assert layer['sink_ratio'] == pytest.approx(r, rel=1e-4)
    assert layer['max_token'] == 'cls' and layer['cls_sink_rate'] == 1.0  # 20 / 36 > 0.3
    assert layer['token_sink_rate'] == 0.0  # 20 / 36 < 10 / 17: under ten times the uniform share
