"""The shared [CLS] decoder: folded == literal == a direct scaled-dot-product-attention computation."""
import itertools

import pytest
import torch
import torch.nn.functional as F

from editvit.models import ClassDecoder


def reference(decoder: ClassDecoder, cls: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Eq. (4) written out: keys and values for every token of [CLS; tokens], via F.scaled_dot_product_attention."""
    B, D = cls.shape
    H, Dh = decoder.num_heads, decoder.head_dim
    pre = decoder.norm_position == 'pre'
    c = decoder.norm(cls) if pre else cls
    m = torch.cat([cls.unsqueeze(1), tokens], 1) if decoder.attend_to_cls else tokens  # (B, M, D)
    m = decoder.norm(m) if pre else m
    q = decoder.q(c) if decoder.q is not None else c
    q = q.view(B, 1, H, Dh).transpose(1, 2)  # (B, H, 1, Dh)
    k = decoder.k(m).view(B, -1, H, Dh).transpose(1, 2)  # (B, H, M, Dh)
    v = decoder.v(m).view(B, -1, H, Dh).transpose(1, 2)  # (B, H, M, Dh)
    out = F.scaled_dot_product_attention(q, k, v).reshape(B, D)
    if decoder.proj is not None:
        out = decoder.proj(out)
    return cls + out if pre else decoder.norm(cls + out)


VARIANTS = list(itertools.product([1, 4], [False, True], [False, True], [True, False], ['pre', 'post']))


def _randomise(module: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.5)  # biases and norm affine included, so no term is trivially zero


@pytest.mark.parametrize('heads,query_proj,out_proj,attend_to_cls,norm', VARIANTS)
def test_folded_equals_literal_and_reference(heads, query_proj, out_proj, attend_to_cls, norm):
    kw = dict(num_heads=heads, query_proj=query_proj, out_proj=out_proj, attend_to_cls=attend_to_cls, norm=norm)
    folded = ClassDecoder(32, folded=True, **kw)
    _randomise(folded)
    literal = ClassDecoder(32, folded=False, **kw)
    literal.load_state_dict(folded.state_dict())
    cls, tokens = torch.randn(3, 32), torch.randn(3, 7, 32)

    out_f, attn_f = folded(cls, tokens)
    out_l, attn_l = literal(cls, tokens)
    torch.testing.assert_close(out_f, out_l, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(attn_f, attn_l, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out_f, reference(literal, cls, tokens), rtol=1e-5, atol=1e-5)
    assert attn_f.shape == (3, heads, 8 if attend_to_cls else 7)
    torch.testing.assert_close(attn_f.sum(-1), torch.ones(3, heads))


@pytest.mark.parametrize('dtype,tol', [(torch.float64, 1e-10), (torch.float32, 2e-4)])
def test_folded_gradients_equal_literal(dtype, tol):
    """Exact in float64 (the same function); in float32 equal up to rounding (the sums run in another order)."""
    folded = ClassDecoder(32, num_heads=2, query_proj=True, out_proj=True).to(dtype)
    _randomise(folded)
    literal = ClassDecoder(32, num_heads=2, query_proj=True, out_proj=True, folded=False).to(dtype)
    literal.load_state_dict(folded.state_dict())
    cls, tokens = torch.randn(4, 32, dtype=dtype), torch.randn(4, 9, 32, dtype=dtype)
    grads = []
    for dec in (folded, literal):
        c, t = cls.clone().requires_grad_(), tokens.clone().requires_grad_()
        out, attn = dec(c, t)
        (out.square().sum() + attn.sin().sum()).backward()
        grads.append([c.grad, t.grad] + [p.grad for p in dec.parameters()])
    scale = max(g.abs().max().item() for g in grads[1])
    for g_f, g_l in zip(*grads):
        assert g_f is not None  # every parameter gets a gradient (DistributedDataParallel needs it), b_k included
        torch.testing.assert_close(g_f, g_l, rtol=tol, atol=tol * scale)


def test_paper_default_has_only_norm_and_two_projections():
    dec = ClassDecoder(384)
    assert sorted(n for n, _ in dec.named_parameters()) == [
        'k.bias', 'k.weight', 'norm.bias', 'norm.weight', 'v.bias', 'v.weight']
    assert sum(p.numel() for p in dec.parameters()) == 2 * (384 * 384 + 384) + 2 * 384


def test_bad_head_count_is_named():
    with pytest.raises(ValueError, match='not divisible by decoder_heads=5'):
        ClassDecoder(32, num_heads=5)


@pytest.mark.parametrize('with_cls,with_offset,heads', [(True, True, 1), (False, False, 2), (True, False, 3)])
def test_folded_token_attention_backward_passes_gradcheck(with_cls, with_offset, heads):
    """The hand-written backward of the folded attention against finite differences, in float64."""
    from editvit.models.layers.folded_attention import folded_token_attention
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 6, dtype=torch.float64, generator=g, requires_grad=True)
    q_k = torch.randn(2, heads, 6, dtype=torch.float64, generator=g, requires_grad=True)
    s_cls = torch.randn(2, heads, 1, dtype=torch.float64, generator=g, requires_grad=True) if with_cls else None
    x_cls = torch.randn(2, 6, dtype=torch.float64, generator=g, requires_grad=True) if with_cls else None
    s_0 = torch.randn(2, heads, 1, dtype=torch.float64, generator=g, requires_grad=True) if with_offset else None
    assert torch.autograd.gradcheck(folded_token_attention, (x, q_k, s_cls, x_cls, s_0))


def test_folded_token_attention_under_bf16_autocast_matches_float32():
    from editvit.models.layers.folded_attention import folded_token_attention
    """Computed in x's dtype (float32, a LayerNorm's output under autocast), gradients back in the inputs' dtypes."""
    x, q_k = torch.randn(2, 7, 8, requires_grad=True), torch.randn(2, 1, 8, requires_grad=True)
    ref = folded_token_attention(x, q_k.bfloat16().float())
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = folded_token_attention(x, q_k.bfloat16())
    torch.testing.assert_close(out, ref)
    out[1].sum().backward()
    assert x.grad.dtype == torch.float32 and q_k.grad.dtype == torch.float32


def test_attention_dropout_path_trains():
    dec = ClassDecoder(16, attn_drop=0.5).train()
    cls, tokens = torch.randn(3, 16, requires_grad=True), torch.randn(3, 4, 16)
    out, attn = dec(cls, tokens)
    torch.testing.assert_close(attn.sum(-1), torch.ones(3, 1))  # returned before dropout
    out.sum().backward()
    assert all(p.grad is not None for p in dec.parameters())
