"""PSViT: token pooling, attention sharing, configs, hand-counted MACs, registered models."""
import pytest
import timm
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from editvit.models import PSViT
from editvit.models.layers.shared_attention import AttentionSharingBlock, MapAttention, SharedAttention
from editvit.models.layers.token_pooling import TokenPooling
from editvit.models.psvit import psvit_macs

REGISTERED = ['psvit_1d_tiny', 'psvit_2d_tiny', 'psvit_2d_small']
# our exact counts for the registered configurations (the paper's could not be retrieved, see the README)
PARAMS = {'psvit_1d_tiny': 10_166_440, 'psvit_2d_tiny': 10_166_440, 'psvit_2d_small': 39_796_072}


def tiny_psvit(**kwargs) -> PSViT:
    """32x32 images, 4x4 patches: an 8x8 grid of 64 tokens, pooled to 16 then 4."""
    args = dict(img_size=32, patch_size=4, embed_dim=32, num_heads=2, depths=(2, 2, 2), num_tokens=(64, 16, 4),
                pooling='2d', share_attention=(False, True, False, True, False, False), num_classes=10)
    return PSViT(**{**args, **kwargs})


def macs(model: torch.nn.Module, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() // 2


def test_token_pooling_averages_the_sequence_or_the_grid_and_keeps_the_cls():
    x = torch.arange(2 * 17 * 3, dtype=torch.float).view(2, 17, 3)  # [CLS] + a 4x4 grid
    out1 = TokenPooling('1d', 8)(x)
    torch.testing.assert_close(out1[:, 0], x[:, 0])
    torch.testing.assert_close(out1[:, 1:], (x[:, 1::2] + x[:, 2::2]) / 2)  # neighbours in the sequence
    out2 = TokenPooling('2d', 4)(x)
    grid = x[:, 1:].view(2, 4, 4, 3)
    top_left = (grid[:, 0, 0] + grid[:, 0, 1] + grid[:, 1, 0] + grid[:, 1, 1]) / 4  # a 2x2 window of the grid
    torch.testing.assert_close(out2[:, 1], top_left)
    assert out2.shape == (2, 5, 3) and list(TokenPooling('2d', 4).parameters()) == []
    with pytest.raises(ValueError, match='square'):
        TokenPooling('2d', 8)
    with pytest.raises(ValueError, match='cannot grow'):
        TokenPooling('1d', 32)(x)


def test_sharing_layers_hold_no_query_or_key_parameters():
    own, shared = AttentionSharingBlock(32, 2, qkv_bias=True), AttentionSharingBlock(32, 2, share=True, qkv_bias=True)
    assert isinstance(own.attn, MapAttention) and isinstance(shared.attn, SharedAttention)
    assert not any(k.startswith(('attn.q', 'attn.k')) for k in shared.state_dict())
    assert {k for k in shared.state_dict() if k.startswith('attn.')} == {
        'attn.v.weight', 'attn.v.bias', 'attn.proj.weight', 'attn.proj.bias'}
    n_own, n_shared = (sum(p.numel() for p in b.parameters()) for b in (own, shared))
    assert n_own - n_shared == 2 * 32 * 32 + 2 * 32  # W_q, W_k and their biases
    model = tiny_psvit()
    assert [type(b.attn) for b in model.blocks] == [MapAttention, SharedAttention] * 2 + [MapAttention] * 2


def test_a_sharing_layer_uses_exactly_the_previous_map():
    model = tiny_psvit().eval()
    x = torch.randn(2, 3, 32, 32)
    _, out = model.forward_with_intermediates(x)
    attn, tokens = out['attention'], out['tokens']
    assert attn[1] is attn[0] and attn[3] is attn[2]
    assert not torch.allclose(attn[5], attn[4])
    # layer 3 by hand: v from its own projection, mixed by layer 2's map
    block, h = model.blocks[3], tokens[2]
    y = block.norm1(h)
    v = block.attn.v(y).view(2, 17, 2, 16).transpose(1, 2)  # (B, H, N, Dh)
    mixed = (attn[2] @ v).transpose(1, 2).reshape(2, 17, 32)
    h = h + block.attn.proj(mixed)
    torch.testing.assert_close(tokens[3], h + block.mlp(block.norm2(h)))
    # the map layer 2 computed is its own softmax(q k^T / sqrt(d))
    pooled = model.token_pools[1](tokens[1])  # layer 2 opens stage 2: 1 + 64 -> 1 + 16 tokens
    qkv = model.blocks[2].attn.qkv(model.blocks[2].norm1(pooled)).view(2, 17, 3, 2, 16).permute(2, 0, 3, 1, 4)
    torch.testing.assert_close(attn[2], (qkv[0] @ qkv[1].transpose(-2, -1) / 4).softmax(-1))


def test_token_counts_per_stage_follow_the_config():
    for pooling, num_tokens in (('2d', (64, 16, 4)), ('1d', (64, 24, 5))):
        model = tiny_psvit(pooling=pooling, num_tokens=num_tokens, share_attention=None).eval()
        _, out = model.forward_with_intermediates(torch.randn(1, 3, 32, 32))
        assert [t.shape[1] - 1 for t in out['tokens']] == [n for n in num_tokens for _ in range(2)]
        assert [a.shape[-1] - 1 for a in out['attention']] == [t.shape[1] - 1 for t in out['tokens']]
    feats = tiny_psvit().forward_intermediates(torch.randn(1, 3, 32, 32), intermediates_only=True)
    assert [f.shape[-2:] for f in feats] == [(8, 8)] * 2 + [(4, 4)] * 2 + [(2, 2)] * 2
    with pytest.raises(ValueError, match='NLC'):
        tiny_psvit(pooling='1d').forward_intermediates(torch.randn(1, 3, 32, 32))


def test_bad_configs_name_the_problem():
    with pytest.raises(ValueError, match='layer 2 cannot share'):
        tiny_psvit(share_attention=(False, False, True, False, False, False))
    with pytest.raises(ValueError, match='layer 0 cannot share'):
        tiny_psvit(share_attention=(True,) + (False,) * 5)
    with pytest.raises(ValueError, match='may only shrink'):
        tiny_psvit(num_tokens=(64, 16, 25))
    with pytest.raises(ValueError, match='square'):
        tiny_psvit(num_tokens=(64, 15, 4))
    with pytest.raises(ValueError, match='one entry per layer'):
        tiny_psvit(share_attention=(False, True))
    # a stage that keeps the token count can open with a sharing layer
    tiny_psvit(num_tokens=(64, 64, 16), share_attention=(False, True, True, True, False, True))


def test_macs_fall_with_pooling_and_sharing_as_computed_by_hand():
    x = torch.randn(1, 3, 32, 32)
    plain = tiny_psvit(num_tokens=(64, 64, 64), share_attention=None)
    pooled = tiny_psvit(share_attention=None)
    pooled_shared = tiny_psvit()
    # by hand, D = 32, hidden 128, T = 1 + N tokens; an own layer costs 12 T D^2 + 2 T^2 D, a sharing one
    # 10 T D^2 + T^2 D; the patch embedding 64 * 48 * 32 = 98304 and the head 32 * 10 = 320
    layer = {t: 12 * t * 32 * 32 + 2 * t * t * 32 for t in (65, 17, 5)}
    share = {t: 10 * t * 32 * 32 + t * t * 32 for t in (65, 17, 5)}
    stem = 64 * 48 * 32 + 320
    assert macs(plain, x) == stem + 6 * layer[65] == 6_513_344
    assert macs(pooled, x) == stem + 2 * (layer[65] + layer[17] + layer[5]) == 2_817_728
    assert macs(pooled_shared, x) == stem + layer[65] + share[65] + layer[17] + share[17] + 2 * layer[5] == 2_505_344
    for model in (plain, pooled, pooled_shared):
        assert macs(model, x) == psvit_macs(model.depths, model.num_tokens, model.share_attention, 32, 32, 4,
                                            num_classes=10)


@pytest.mark.parametrize('name', REGISTERED)
def test_registered_models_sizes_and_hand_counted_macs(name):
    with torch.device('meta'):
        model = timm.create_model(name)
    n = sum(p.numel() for p in model.parameters())
    hand = psvit_macs(model.depths, model.num_tokens, model.share_attention, model.embed_dim)
    print(f'{name}: {n:,} parameters, {hand / 1e9:.3f} GMACs by hand')
    assert n == PARAMS[name]
    assert sum(model.depths) == 24 and model.share_attention.count(True) == 12
    deit = psvit_macs([12], [196], None, model.embed_dim)  # DeiT-Tiny / DeiT-Small at 224
    assert 0.85 * deit < hand < deit


@pytest.mark.parametrize('name', REGISTERED)
def test_every_registered_name_builds_and_takes_a_training_step(name):
    model = timm.create_model(name, img_size=32, patch_size=4, embed_dim=32, num_heads=2, num_tokens=(64, 16, 4),
                              num_classes=10)
    assert isinstance(model, PSViT) and model.pretrained_cfg['paper_ids'] == 'arXiv:2108.03428'
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    assert model.blocks[0].attn.qkv.weight.grad.abs().sum() > 0  # the shared map carries gradient back to q, k
    before = model.blocks[1].attn.v.weight.detach().clone()
    opt.step()
    assert torch.isfinite(loss) and not torch.equal(before, model.blocks[1].attn.v.weight)


def test_subnet_on_supernet_weights_equals_the_standalone_subnet():
    supernet = tiny_psvit(share_attention=None).eval()
    subnet = tiny_psvit().eval()
    state = supernet.state_dict()
    for i, block in enumerate(subnet.blocks):  # a sharing layer inherits the value third of the qkv weights
        if block.share:
            for p in ('weight', 'bias'):
                state[f'blocks.{i}.attn.v.{p}'] = state.pop(f'blocks.{i}.attn.qkv.{p}')[64:]
            state.pop(f'blocks.{i}.attn.proj.weight'), state.pop(f'blocks.{i}.attn.proj.bias')
            state[f'blocks.{i}.attn.proj.weight'] = supernet.blocks[i].attn.proj.weight
            state[f'blocks.{i}.attn.proj.bias'] = supernet.blocks[i].attn.proj.bias
    subnet.load_state_dict(state)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(supernet.forward_subnet(x, subnet.num_tokens, subnet.share_attention), subnet(x))
    torch.testing.assert_close(supernet.forward_subnet(x, (64, 16, 4), (False,) * 6), supernet(x))


def test_grad_checkpointing_gives_the_same_gradients():
    model = tiny_psvit()
    x = torch.randn(2, 3, 32, 32)
    model(x).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.set_grad_checkpointing()
    model(x).sum().backward()
    for g, p in zip(grads, model.parameters()):
        torch.testing.assert_close(g, p.grad)


def test_edit_and_psvit_return_one_intermediates_schema():
    from typing import get_type_hints

    from editvit.models.base import Intermediates
    x = torch.randn(2, 3, 32, 32)
    edit = timm.create_model('edit_tiny_patch16_224', img_size=32, patch_size=4, embed_dim=32, depth=6, num_heads=2,
                             num_classes=10).eval()
    for model in (tiny_psvit().eval(), edit):
        logits, out = model.forward_with_intermediates(x)
        assert set(out) == set(get_type_hints(Intermediates))
        torch.testing.assert_close(logits, model(x))
        for key in ('tokens', 'attention', 'cls', 'pooling', 'shared', 'token_grid'):
            assert isinstance(out[key], list) and len(out[key]) == 6, key
        for tokens, attn, cls in zip(out['tokens'], out['attention'], out['cls']):
            assert attn.shape == (2, 2, tokens.shape[1], tokens.shape[1]) and cls.shape == (2, 32)
    psvit_out = tiny_psvit().forward_with_intermediates(x)[1]
    assert psvit_out['decoder_attention'] is None
    assert [T is not None for T in psvit_out['pooling']] == [False, False, True, False, True, False]
    assert psvit_out['token_grid'] == [(8, 8)] * 2 + [(4, 4)] * 2 + [(2, 2)] * 2
    assert psvit_out['shared'] == [False, True, False, True, False, False]
    assert [a.shape for a in out['decoder_attention']] == [(2, 1, 1 + 64)] * 6  # EDIT, the last model above
