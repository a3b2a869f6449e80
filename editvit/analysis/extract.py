"""Every layer's attention from one forward pass: editvit models' own intermediates, hooks for timm ViTs.

A model with `forward_with_intermediates` (EDIT, PSViT: see `editvit.models.base.Intermediates`) returns every
layer's tokens, attention map, decoder attention and pooling matrix by name, and is read from that alone.

For third-party timm models (ViT, DeiT, DeiT3, register ViTs, CaiT) the maps are recorded by hooks. timm's
`Attention` calls `F.scaled_dot_product_attention` by default, which never materialises the attention matrix. For
the one pass that extracts the maps, each block's attention module gets `fused_attn = False` (its own attribute;
timm's global setting is not touched), so timm itself computes

    A = softmax(q_norm(q) k_norm(k)^T * scale)          # (B, H, N, N), rows = queries, columns = keys

and a forward hook on its `attn_drop` (the identity in eval mode) records A: nothing is recomputed. On exit the
modules get their previous `fused_attn` back, the hooks are removed and the model's train/eval mode is restored.
CaiT's `TalkingHeadAttn` has no fused path; its map is recomputed from its weights on its recorded input (see
`talking_heads_attention`).

Token pooling (PSViT, EDIT with `num_tokens`) changes N between layers; the models' pooling matrices T_l (see
`maps`) let every layer's map be drawn on the input patch grid.

Token layout of the self-attention sequence (N tokens): the prefix tokens first ([CLS], then register or
distillation tokens, as timm orders them), then the patches in row-major grid order. EDIT's encoder and CaiT's trunk
have no prefix tokens (their [CLS] is outside the self-attention), so a sink there can only sit on a patch.
"""
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, List

import torch
import torch.nn as nn
from timm.layers import Attention
from timm.models.cait import TalkingHeadAttn

from ..errors import ConfigError
from .maps import AttentionMaps

SUPPORTED = (Attention, TalkingHeadAttn)


class UnsupportedModelError(ConfigError):
    """A model whose layers the attention analysis cannot read."""


def talking_heads_attention(attn: TalkingHeadAttn, x: torch.Tensor) -> torch.Tensor:
    """CaiT's talking-heads attention map on its input x (B, N, C), recomputed from its weights: (B, H, N, N).

    The map is the softmax distribution after the pre-softmax head mixing `proj_l` and before the post-softmax
    mixing `proj_w` (the mixed map is not a distribution: its rows need not sum to 1 or be non-negative).
    """
    B, N, C = x.shape
    H = attn.num_heads
    qkv = attn.qkv(x).reshape(B, N, 3, H, C // H).permute(2, 0, 3, 1, 4)  # (3, B, H, N, Dh)
    scores = qkv[0] * attn.scale @ qkv[1].transpose(-2, -1)  # (B, H, N, N)
    scores = attn.proj_l(scores.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # (B, H, N, N) mixed across heads
    return scores.softmax(dim=-1)  # (B, H, N, N)


def _unsupported_attention(attn: nn.Module) -> UnsupportedModelError:
    return UnsupportedModelError(
        f'cannot read the attention of {type(attn).__module__}.{type(attn).__name__}: supported are timm '
        f'Attention (ViT, DeiT, DeiT3, register ViTs), CaiT TalkingHeadAttn and models with '
        f'forward_with_intermediates (EDIT, PSViT)')


def attention_blocks(model: nn.Module) -> List[nn.Module]:
    """The model's self-attention blocks, or UnsupportedModelError saying what the analysis supports (an editvit
    model's blocks are read through its `forward_with_intermediates`, whatever their attention)."""
    blocks = getattr(model, 'blocks', None)
    if blocks is None or len(blocks) == 0 or not all(hasattr(b, 'attn') for b in blocks) \
            or not hasattr(model, 'patch_embed'):
        raise UnsupportedModelError(
            f'{type(model).__name__} has no `blocks` of attention layers; the analysis supports ViT-style timm '
            f'models (ViT, DeiT, DeiT3, CaiT, ViTs with register tokens), EDIT and PSViT')
    for block in blocks:
        if not hasattr(model, 'forward_with_intermediates') and not isinstance(block.attn, SUPPORTED):
            raise _unsupported_attention(block.attn)
    return list(blocks)


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    modes = [(m, m.training) for m in model.modules()]  # per module: a frozen part may be in eval already
    model.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


@dataclass
class _Recording:
    """What the hooks saw, in the order the layers ran: each block closes one layer."""
    attention: List[torch.Tensor] = field(default_factory=list)  # per layer (B, H, N, N)
    outputs: List[torch.Tensor] = field(default_factory=list)  # per layer (B, N, D)


@contextmanager
def _record_blocks(blocks: List[nn.Module]) -> Iterator[_Recording]:
    """Record each block's attention map and output while the context is open; then undo every change."""
    rec = _Recording()
    handles, fused = [], []
    try:
        for block in blocks:
            attn = block.attn
            if isinstance(attn, Attention):
                fused.append((attn, attn.fused_attn))
                attn.fused_attn = False
                handles.append(attn.attn_drop.register_forward_hook(lambda m, args, out: rec.attention.append(out)))
            else:
                handles.append(attn.register_forward_pre_hook(
                    lambda m, args: rec.attention.append(talking_heads_attention(m, args[0]))))
            handles.append(block.register_forward_hook(lambda m, args, out: rec.outputs.append(out)))
        yield rec
    finally:
        for h in handles:
            h.remove()
        for attn, flag in fused:
            attn.fused_attn = flag


def _check_token_counts(out: dict, num_embedded: int) -> None:
    """Every change of the token count between layers must be explained by that layer's pooling matrix."""
    previous = num_embedded
    for layer, (T, attn, tokens) in enumerate(zip(out['pooling'], out['attention'], out['tokens'])):
        expected = previous if T is None else T.shape[0]
        if (T is not None and T.shape[1] != previous) or attn.shape[-1] != expected:
            raise UnsupportedModelError(
                f'layer {layer} attends over {attn.shape[-1]} tokens, but the previous layer gave {previous} and '
                f'the recorded token pooling explains {expected}: the analysis follows token counts changed by '
                f'editvit TokenPooling only')
        previous = tokens.shape[1]


def _from_intermediates(model: nn.Module, x: torch.Tensor) -> AttentionMaps:
    """AttentionMaps of an editvit model from its `forward_with_intermediates`."""
    _, out = model.forward_with_intermediates(x)
    grid = tuple(model.patch_embed.grid_size)
    first = out['pooling'][0]
    num_embedded = first.shape[1] if first is not None else out['attention'][0].shape[-1]  # before any pooling
    _check_token_counts(out, num_embedded)
    num_prefix = num_embedded - grid[0] * grid[1]
    has_cls = num_prefix > 0 and getattr(model, 'cls_token', None) is not None
    return AttentionMaps(attention=out['attention'], tokens=out['tokens'], num_prefix_tokens=num_prefix,
                         has_cls=has_cls, grid_size=grid, decoder_attention=out['decoder_attention'],
                         pooling=out['pooling'], shared=out['shared'], token_grids=out['token_grid'])


def _from_hooks(model: nn.Module, x: torch.Tensor) -> AttentionMaps:
    """AttentionMaps of a timm ViT, recorded by hooks on its blocks."""
    blocks = attention_blocks(model)
    grid = tuple(model.patch_embed.grid_size)
    with _record_blocks(blocks) as rec:
        model.forward_features(x)
    if len(rec.attention) != len(blocks) or len(rec.outputs) != len(blocks):
        raise UnsupportedModelError(
            f'{type(model).__name__}: expected each of its {len(blocks)} blocks to run its attention once per '
            f'forward pass, saw {len(rec.attention)} attention maps and {len(rec.outputs)} block outputs')
    num_prefix = rec.attention[0].shape[-1] - grid[0] * grid[1]
    has_cls = num_prefix > 0 and getattr(model, 'has_class_token', getattr(model, 'cls_token', None) is not None)
    return AttentionMaps(attention=rec.attention, tokens=rec.outputs, num_prefix_tokens=num_prefix,
                         has_cls=has_cls, grid_size=grid, pooling=[None] * len(blocks), shared=[False] * len(blocks),
                         token_grids=[grid] * len(blocks))


def extract_attention(model: nn.Module, x: torch.Tensor) -> AttentionMaps:
    """Run model once on images x (B, C, H, W) in eval mode and return every layer's attention and output tokens.

    Works on editvit models (EDIT: encoder self-attention + decoder attention, with or without PSViT pooling and
    sharing in its encoder; PSViT), read from their `forward_with_intermediates`, and on timm ViTs whose blocks use
    `Attention` or `TalkingHeadAttn` (for CaiT: the trunk, `model.blocks`). A sharing layer's map is the one it
    reused.
    """
    with _eval_mode(model), torch.inference_mode():
        if hasattr(model, 'forward_with_intermediates'):
            return _from_intermediates(model, x)
        return _from_hooks(model, x)
