"""Every layer's attention from one forward pass, for EDIT and for timm ViTs, whatever timm's fused-attention mode.

timm's `Attention` calls `F.scaled_dot_product_attention` by default, which never materialises the attention
matrix. For the one pass that extracts the maps, each block's attention module gets `fused_attn = False` (its own
attribute; timm's global setting is not touched), so timm itself computes

    A = softmax(q_norm(q) k_norm(k)^T * scale)          # (B, H, N, N), rows = queries, columns = keys

and a forward hook on its `attn_drop` (the identity in eval mode) records A: nothing is recomputed. On exit the
modules get their previous `fused_attn` back, the hooks are removed and the model's train/eval mode is restored.
CaiT's `TalkingHeadAttn` has no fused path; its map is recomputed from its weights on its recorded input (see
`talking_heads_attention`). PSViT's `MapAttention` / `SharedAttention` return the map they used, which a hook on
the module records (a sharing layer's map is its predecessor's, recorded again for that layer).

Token pooling (PSViT, EDIT with `num_tokens`) changes N between layers: a hook on every `TokenPooling` notes which
layer pooled from how many tokens to how many, and the pooling matrices T_l are rebuilt from it afterwards (see
`maps`), so every layer's map can be drawn on the input patch grid.

Token layout of the self-attention sequence (N tokens): the prefix tokens first ([CLS], then register or
distillation tokens, as timm orders them), then the patches in row-major grid order. EDIT's encoder and CaiT's trunk
have no prefix tokens (their [CLS] is outside the self-attention), so a sink there can only sit on a patch.
"""
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Tuple

import torch
import torch.nn as nn
from timm.layers import Attention
from timm.models.cait import TalkingHeadAttn

from ..models.edit import EditVisionTransformer
from ..models.layers.shared_attention import MapAttention, SharedAttention
from ..models.layers.token_pooling import TokenPooling
from .maps import AttentionMaps

# attention modules that return (output, map): PSViT's own and sharing attention
MAP_RETURNING = (MapAttention, SharedAttention)
SUPPORTED = (Attention, TalkingHeadAttn, *MAP_RETURNING)


class UnsupportedModelError(ValueError):
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
        f'Attention (ViT, DeiT, DeiT3, register ViTs, EDIT), CaiT TalkingHeadAttn and PSViT\'s MapAttention / '
        f'SharedAttention')


def attention_blocks(model: nn.Module) -> List[nn.Module]:
    """The model's self-attention blocks, or UnsupportedModelError saying what the analysis supports."""
    blocks = getattr(model, 'blocks', None)
    if blocks is None or len(blocks) == 0 or not all(hasattr(b, 'attn') for b in blocks) \
            or not hasattr(model, 'patch_embed'):
        raise UnsupportedModelError(
            f'{type(model).__name__} has no `blocks` of attention layers; the analysis supports ViT-style timm '
            f'models (ViT, DeiT, DeiT3, CaiT, ViTs with register tokens), EDIT and PSViT')
    for block in blocks:
        if not isinstance(block.attn, SUPPORTED):
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
    attention: List[torch.Tensor] = field(default_factory=list)  # per layer (B, H, N_l, N_l)
    outputs: List[torch.Tensor] = field(default_factory=list)  # per layer (B, N_l, D)
    pools: List[List[Tuple[TokenPooling, int, int]]] = field(default_factory=list)  # per layer (pool, N in, N out)
    pending: List[Tuple[TokenPooling, int, int]] = field(default_factory=list)  # pools since the last block

    def close_layer(self, out) -> None:
        self.outputs.append(out[0] if isinstance(out, tuple) else out)  # PSViT blocks return (tokens, map)
        self.pools.append(self.pending)
        self.pending = []


@contextmanager
def _record_blocks(model: nn.Module, blocks: List[nn.Module]) -> Iterator[_Recording]:
    """Record each block's attention map and output, and every token pooling, while the context is open; then
    undo every change."""
    rec = _Recording()
    handles, fused = [], []

    def on_pool(m, args, out):
        if out.shape[1] != args[0].shape[1]:
            rec.pending.append((m, args[0].shape[1], out.shape[1]))

    try:
        for module in model.modules():
            if isinstance(module, TokenPooling):
                handles.append(module.register_forward_hook(on_pool))
        for block in blocks:
            attn = block.attn
            if isinstance(attn, Attention):
                fused.append((attn, attn.fused_attn))
                attn.fused_attn = False
                handles.append(attn.attn_drop.register_forward_hook(lambda m, args, out: rec.attention.append(out)))
            elif isinstance(attn, MAP_RETURNING):
                handles.append(attn.register_forward_hook(lambda m, args, out: rec.attention.append(out[1])))
            else:
                handles.append(attn.register_forward_pre_hook(
                    lambda m, args: rec.attention.append(talking_heads_attention(m, args[0]))))
            handles.append(block.register_forward_hook(lambda m, args, out: rec.close_layer(out)))
        yield rec
    finally:
        for h in handles:
            h.remove()
        for attn, flag in fused:
            attn.fused_attn = flag


def pooling_matrix(pool: TokenPooling, num_in: int, num_out: int) -> torch.Tensor:
    """The pooling as a matrix T (num_out, num_in), tokens_out = T tokens_in: the pool applied to the identity."""
    eye = torch.eye(num_in, dtype=torch.float64)[None]  # (1, N_in, N_in): N_in tokens of width N_in
    return pool(eye, num_out - pool.num_prefix_tokens)[0]  # (N_out, N_in)


def _layer_pooling(rec: _Recording, num_embedded: int) -> List[Optional[torch.Tensor]]:
    """T_l per layer from the recorded poolings, checked against the token counts the layers really had."""
    pooling, previous = [], num_embedded
    for layer, (pools, attn) in enumerate(zip(rec.pools, rec.attention)):
        T = None
        for pool, num_in, num_out in pools:
            M = pooling_matrix(pool, num_in, num_out)  # (N_out, N_in)
            T = M if T is None else M @ T
        expected = previous if T is None else T.shape[0]
        if (T is not None and T.shape[1] != previous) or attn.shape[-1] != expected:
            raise UnsupportedModelError(
                f'layer {layer} attends over {attn.shape[-1]} tokens, but the previous layer gave {previous} and '
                f'the recorded token pooling explains {expected}: the analysis follows token counts changed by '
                f'editvit TokenPooling only')
        pooling.append(T)
        previous = rec.outputs[layer].shape[1]
    return pooling


def _token_grid(T: Optional[torch.Tensor], pools: List[Tuple[TokenPooling, int, int]], num_tokens: int,
                num_prefix: int, current: Optional[Tuple[int, int]]) -> Optional[Tuple[int, int]]:
    """The grid of a layer's patch tokens: unchanged without pooling, the pooled square after 2D pooling, None
    after 1D pooling (the tokens are no longer on a grid)."""
    if T is None:
        return current
    if pools[-1][0].mode == '2d':
        side = round((num_tokens - num_prefix) ** 0.5)
        return side, side
    return None


def extract_attention(model: nn.Module, x: torch.Tensor) -> AttentionMaps:
    """Run model once on images x (B, C, H, W) and return every layer's attention and output tokens.

    Works on EDIT (`EditVisionTransformer`: encoder self-attention + decoder attention, with or without PSViT
    pooling and sharing in its encoder), on PSViT, and on timm ViTs whose blocks use `Attention` or
    `TalkingHeadAttn` (for CaiT: the trunk, `model.blocks`). A sharing layer's map is the one it reused.
    """
    blocks = attention_blocks(model)
    grid = tuple(model.patch_embed.grid_size)
    with _eval_mode(model), torch.inference_mode():
        with _record_blocks(model, blocks) as rec:
            if isinstance(model, EditVisionTransformer):
                _, inter = model.forward_with_intermediates(x)
                decoder_attention = inter['decoder_attention']  # (B, L, Hd, 1+N) or a list of (B, Hd, 1+N_l)
            else:
                model.forward_features(x)
                decoder_attention = None
        if len(rec.attention) != len(blocks) or len(rec.outputs) != len(blocks):
            raise UnsupportedModelError(
                f'{type(model).__name__}: expected each of its {len(blocks)} blocks to run its attention once per '
                f'forward pass, saw {len(rec.attention)} attention maps and {len(rec.outputs)} block outputs')
        first_pools = rec.pools[0]
        num_embedded = first_pools[0][1] if first_pools else rec.attention[0].shape[-1]  # before any pooling
        pooling = _layer_pooling(rec, num_embedded)
    num_prefix = num_embedded - grid[0] * grid[1]
    has_cls = num_prefix > 0 and getattr(model, 'cls_token', None) is not None
    token_grids, current = [], grid
    for T, pools, attn in zip(pooling, rec.pools, rec.attention):
        current = _token_grid(T, pools, attn.shape[-1], num_prefix, current)
        token_grids.append(current)
    return AttentionMaps(attention=rec.attention, tokens=rec.outputs, num_prefix_tokens=num_prefix,
                         has_cls=has_cls, grid_size=grid, decoder_attention=decoder_attention, pooling=pooling,
                         shared=[bool(getattr(b, 'share', False)) for b in blocks], token_grids=token_grids)
