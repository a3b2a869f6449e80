"""PSViT inside EDIT's encoder: attention sharing and token pooling in the edit_*_ps_* variants."""
import pytest
import timm
import torch
from torch.utils.flop_counter import FlopCounterMode

from editvit.models.layers.ps_block import PSBlock
from editvit.models.layers.shared_attention import SharedAttention

from .common import tiny_edit

ARGS = dict(img_size=32, patch_size=4, embed_dim=32, depth=4, num_heads=2, init_values=0.5)  # 8x8 = 64 patches
POOLED = (64, 16, 16, 4)


def ps_edit(**kwargs) -> torch.nn.Module:
    """tiny_edit's EDIT as the pooling/sharing variant: pooling or sharing only as asked for."""
    args = dict(img_size=32, patch_size=8, embed_dim=48, depth=3, num_heads=3, num_classes=10)
    return timm.create_model('edit_tiny_ps_patch16_224', **{**args, **kwargs})
SHARED = (False, False, True, False)


def macs(model: torch.nn.Module, x: torch.Tensor) -> int:
    # grad mode on: FlopCounterMode's module tracker fails on EDIT under no_grad (a view of cls_token, torch 2.14)
    with FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def test_blocks_that_keep_every_token_compute_the_plain_encoder():
    plain = tiny_edit(**ARGS).eval()
    ps = ps_edit(num_tokens=(64,) * 4, **ARGS).eval()
    assert all(isinstance(b, PSBlock) and b.pool is None for b in ps.blocks)
    ps.load_state_dict(plain.state_dict())  # the same keys: a PSBlock that owns its attention is a timm Block
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(ps(x), plain(x))


def test_pooled_encoder_and_the_decoder_attending_to_pooled_tokens():
    model = ps_edit(num_tokens=POOLED, **ARGS).eval()
    model.load_state_dict(tiny_edit(**ARGS).state_dict())  # pooling has no weights
    x = torch.randn(2, 3, 32, 32)
    logits, out = model.forward_with_intermediates(x)
    assert [t.shape[1] for t in out['tokens']] == list(POOLED)
    assert [a.shape[-1] for a in out['decoder_attention']] == [1 + n for n in POOLED]  # [CLS] + pooled tokens
    torch.testing.assert_close(logits, model(x))
    assert model.forward_features(x).shape == (2, 1 + 4, 32)
    grids = [f.shape[-2:] for f in model.forward_intermediates(x, intermediates_only=True)]
    assert grids == [(8, 8), (4, 4), (4, 4), (2, 2)]
    # the second depth sees the 2x2 averages of the first depth's grid, before its block
    pooled = model.blocks[1].pool(out['tokens'][0]).view(2, 4, 4, 32)
    grid = out['tokens'][0].view(2, 8, 8, 32)
    torch.testing.assert_close(pooled[:, 0, 0], grid[:, :2, :2].mean(dim=(1, 2)))
    one_d = ps_edit(num_tokens=(64, 32, 32, 8), pooling='1d', **ARGS)
    with pytest.raises(ValueError, match='NLC'):
        one_d.forward_intermediates(x)
    assert [f.shape[1] for f in one_d.forward_intermediates(x, output_fmt='NLC', intermediates_only=True)] == [
        64, 32, 32, 8]


def test_sharing_blocks_have_no_qk_and_reuse_the_previous_map():
    model = ps_edit(share_attention=SHARED, **ARGS).eval()
    assert isinstance(model.blocks[2].attn, SharedAttention)
    assert not any(k.startswith('blocks.2.attn.qkv') for k in model.state_dict())
    model(torch.randn(2, 3, 32, 32))
    assert model.blocks[2].last_attn is model.blocks[1].last_attn
    assert not torch.allclose(model.blocks[3].last_attn, model.blocks[2].last_attn)
    with pytest.raises(ValueError, match='layer 0 cannot share'):
        ps_edit(share_attention=(True, False, False, False), **ARGS)
    with pytest.raises(ValueError, match='drop block_fn'):
        from editvit.models.layers.cb_block import ContextBroadcastBlock
        ps_edit(share_attention=SHARED, block_fn=ContextBroadcastBlock, **ARGS)


def test_pooled_sharing_edit_gradients_survive_grad_checkpointing():
    model = ps_edit(num_tokens=(64, 64, 16, 16), share_attention=(False, True, False, True), **ARGS)
    x = torch.randn(2, 3, 32, 32)
    model(x).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    assert grads['blocks.0.attn.qkv.weight'].abs().sum() > 0
    model.zero_grad()
    model.set_grad_checkpointing()
    model(x).sum().backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[n], msg=n)


def test_edit_macs_fall_with_pooling_as_computed_by_hand():
    x = torch.randn(1, 3, 32, 32)
    # unpooled PSBlocks, not timm Blocks: timm's fused attention (SDPA) is not counted by FlopCounterMode on CPU
    full, pooled = ps_edit(num_tokens=(64,) * 4, **ARGS), ps_edit(num_tokens=POOLED, **ARGS)
    shared = ps_edit(num_tokens=POOLED, share_attention=SHARED, **ARGS)
    D = 32
    stem = 64 * 48 * D + D * 10  # patch embedding and head
    # an own-attention block on n tokens (no [CLS] among them), and the folded decoder step over them (one head:
    # W_k^T q and W_v (a x) are D^2 each, the scores and the weighted sum n D each)
    encoder = {n: 12 * n * D * D + 2 * n * n * D for n in (64, 16, 4)}
    decoder = {n: 2 * D * D + 2 * n * D for n in (64, 16, 4)}
    assert macs(full, x) == stem + 4 * (encoder[64] + decoder[64]) == 4_317_504
    assert macs(pooled, x) == stem + sum(encoder[n] + decoder[n] for n in POOLED) == 1_637_952
    # sharing at depth 2 (16 tokens) drops W_q, W_k (2 n D^2) and the scores (n^2 D)
    assert macs(pooled, x) - macs(shared, x) == 2 * 16 * D * D + 16 * 16 * D


def test_registered_variants_pool_to_7x7_with_pairs_sharing():
    for size in ('tiny', 'small', 'base'):
        with torch.device('meta'):
            model = timm.create_model(f'edit_{size}_ps_patch16_224')
        assert [b.share for b in model.blocks] == [False, True] * 6
        assert [b.pool.num_tokens for b in model.blocks if b.pool is not None] == [100, 49]
        assert model(torch.empty(1, 3, 224, 224, device='meta')).shape == (1, 1000)
    with torch.device('meta'):
        only_sharing = timm.create_model('edit_tiny_ps_patch16_224', share_attention=(False, True) * 6)
    assert all(b.pool is None for b in only_sharing.blocks) and only_sharing.pooling is None
