"""Every layer's attention from one forward pass, for EDIT and for timm ViTs, whatever timm's fused-attention mode.

timm's `Attention` calls `F.scaled_dot_product_attention` by default, which never materialises the attention
matrix. For the one pass that extracts the maps, each block's attention module gets `fused_attn = False` (its own
attribute; timm's global setting is not touched), so timm itself computes

    A = softmax(q_norm(q) k_norm(k)^T * scale)          # (B, H, N, N), rows = queries, columns = keys

and a forward hook on its `attn_drop` (the identity in eval mode) records A: nothing is recomputed. On exit the
modules get their previous `fused_attn` back, the hooks are removed and the model's train/eval mode is restored.
CaiT's `TalkingHeadAttn` has no fused path; its map is recomputed from its weights on its recorded input (see
`talking_heads_attention`).

Token layout of the self-attention sequence (N tokens): the prefix tokens first ([CLS], then register or
distillation tokens, as timm orders them), then the patches in row-major grid order. EDIT's encoder and CaiT's trunk
have no prefix tokens (their [CLS] is outside the self-attention), so a sink there can only sit on a patch.
"""
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple

import torch
import torch.nn as nn
from timm.layers import Attention
from timm.models.cait import TalkingHeadAttn

from ..models.edit import EditVisionTransformer


class UnsupportedModelError(ValueError):
    """A model whose layers the attention analysis cannot read."""


@dataclass
class AttentionMaps:
    """The per-layer attention and output tokens of one batch of images.

    Attributes:
        attention: Self-attention of every block, (B, L, H, N, N), rows = queries, columns = keys.
        tokens: Output tokens of every block, (B, L, N, D), same token order as `attention`.
        num_prefix_tokens: Tokens before the patches in the self-attention sequence (0 for EDIT and CaiT's trunk).
        has_cls: Whether token 0 of the self-attention sequence is [CLS].
        grid_size: Patch grid (h, w); N = num_prefix_tokens + h * w.
        decoder_attention: EDIT only: the decoder's attention (B, L, Hd, 1+N_patches), slot 0 = previous [CLS].
    """
    attention: torch.Tensor
    tokens: torch.Tensor
    num_prefix_tokens: int
    has_cls: bool
    grid_size: Tuple[int, int]
    decoder_attention: Optional[torch.Tensor] = None

    @property
    def num_layers(self) -> int:
        return self.attention.shape[1]

    @property
    def num_heads(self) -> int:
        return self.attention.shape[2]

    @property
    def cls_query_source(self) -> Optional[str]:
        """Where the [CLS] query's attention comes from: 'decoder' (EDIT), 'self-attention' (its [CLS] row) or None."""
        if self.decoder_attention is not None:
            return 'decoder'
        return 'self-attention' if self.has_cls else None

    def cls_query_attention(self) -> Optional[torch.Tensor]:
        """The [CLS] query's attention per layer and head, (B, L, H, 1+N_patches): slot 0 = [CLS], then the patches.

        For EDIT this is the decoder (slot 0 the previous [CLS]); for a ViT with [CLS] the first row of the
        self-attention, without the register/distillation columns (so a row sums to 1 minus their share).
        None when the model has no [CLS] query (CaiT's trunk, register ViTs with global average pooling).
        """
        if self.decoder_attention is not None:
            return self.decoder_attention
        if not self.has_cls:
            return None
        row = self.attention[:, :, :, 0]  # (B, L, H, N)
        return torch.cat([row[..., :1], row[..., self.num_prefix_tokens:]], dim=-1)  # (B, L, H, 1+N_patches)


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
        f'Attention (ViT, DeiT, DeiT3, register ViTs, EDIT) and CaiT TalkingHeadAttn')


def attention_blocks(model: nn.Module) -> List[nn.Module]:
    """The model's self-attention blocks, or UnsupportedModelError saying what the analysis supports."""
    blocks = getattr(model, 'blocks', None)
    if blocks is None or len(blocks) == 0 or not all(hasattr(b, 'attn') for b in blocks) \
            or not hasattr(model, 'patch_embed'):
        raise UnsupportedModelError(
            f'{type(model).__name__} has no `blocks` of attention layers; the analysis supports ViT-style timm '
            f'models (ViT, DeiT, DeiT3, CaiT, ViTs with register tokens) and EDIT')
    for block in blocks:
        if not isinstance(block.attn, (Attention, TalkingHeadAttn)):
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


@contextmanager
def _record_blocks(blocks: List[nn.Module]) -> Iterator[Tuple[List[torch.Tensor], List[torch.Tensor]]]:
    """Record each block's attention map and output while the context is open; then undo every change."""
    attention: List[torch.Tensor] = []
    outputs: List[torch.Tensor] = []
    handles, fused = [], []
    try:
        for block in blocks:
            attn = block.attn
            if isinstance(attn, Attention):
                fused.append((attn, attn.fused_attn))
                attn.fused_attn = False
                handles.append(attn.attn_drop.register_forward_hook(lambda m, args, out: attention.append(out)))
            else:
                handles.append(attn.register_forward_pre_hook(
                    lambda m, args: attention.append(talking_heads_attention(m, args[0]))))
            handles.append(block.register_forward_hook(lambda m, args, out: outputs.append(out)))
        yield attention, outputs
    finally:
        for h in handles:
            h.remove()
        for attn, flag in fused:
            attn.fused_attn = flag


def extract_attention(model: nn.Module, x: torch.Tensor) -> AttentionMaps:
    """Run model once on images x (B, C, H, W) and return every layer's attention and output tokens.

    Works on EDIT (`EditVisionTransformer`: encoder self-attention + decoder attention) and on timm ViTs whose
    blocks use `Attention` or `TalkingHeadAttn` (for CaiT: the trunk, `model.blocks`).
    """
    blocks = attention_blocks(model)
    grid = tuple(model.patch_embed.grid_size)
    with _eval_mode(model), torch.inference_mode(), _record_blocks(blocks) as (attention, outputs):
        if isinstance(model, EditVisionTransformer):
            _, inter = model.forward_with_intermediates(x)
            decoder_attention = inter['decoder_attention']  # (B, L, Hd, 1+N)
        else:
            model.forward_features(x)
            decoder_attention = None
        if len(attention) != len(blocks) or len(outputs) != len(blocks):
            raise UnsupportedModelError(
                f'{type(model).__name__}: expected each of its {len(blocks)} blocks to run its attention once per '
                f'forward pass, saw {len(attention)} attention maps and {len(outputs)} block outputs')
        attention = torch.stack(attention, dim=1)  # (B, L, H, N, N)
        tokens = torch.stack(outputs, dim=1)  # (B, L, N, D)
    num_prefix = tokens.shape[2] - grid[0] * grid[1]
    has_cls = num_prefix > 0 and getattr(model, 'cls_token', None) is not None
    return AttentionMaps(attention=attention, tokens=tokens, num_prefix_tokens=num_prefix, has_cls=has_cls,
                         grid_size=grid, decoder_attention=decoder_attention)
