"""PSViT's token pooling and attention sharing inside EDIT's encoder: blocks that keep `Block`'s one-tensor call.

EDIT runs its encoder one block at a time, `x = blocks[i](x)`, and lets the shared decoder read the tokens after
every block. A `PSBlock` fits that call: it pools its input when its token count is smaller than what it receives,
and when it shares it reads the map its predecessor used from that block (linked at construction, not registered as
a submodule). Each block keeps the map it used in `last_attn` for its successor, so the decoder simply attends to
whatever tokens a depth has: the pooled ones after a pooling layer.

    EDIT, depth i:  p_i = Block_i(Pool_{N_i}(p_(i-1)), A_(i-1) if share_i)       # (B, N_i, D)
                    c_i = ClassDecoder(c_(i-1), p_i)                              # attends to N_i pooled tokens

An own-attention `PSBlock` has timm `Block`'s state-dict keys, so plain EDIT weights load into a pooled EDIT; a
sharing one holds `attn.v` instead of `attn.qkv`.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from .ps_config import check_psvit_config
from .shared_attention import AttentionSharingBlock
from .token_pooling import PoolingMode, TokenPooling


class PSBlock(AttentionSharingBlock):
    """An `AttentionSharingBlock` with optional pooling in front and its predecessor linked for the shared map.

    Args:
        num_tokens: Pool the incoming patch tokens to this many (None: keep them).
        pooling: '1d' or '2d' token pooling.
        **kwargs: `AttentionSharingBlock`'s arguments (dim, num_heads, share, ...).
    """

    def __init__(self, *args, num_tokens: Optional[int] = None, pooling: PoolingMode = '2d', **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pool = TokenPooling(pooling, num_tokens, num_prefix_tokens=0) if num_tokens is not None else None
        self._previous: List[PSBlock] = []  # a plain list: the predecessor is not a submodule of this block
        self.last_attn: Optional[torch.Tensor] = None

    def link(self, previous: 'PSBlock') -> None:
        self._previous[:] = [previous]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = self.pool(x)  # (B, N_i, D)
        prev_attn = None
        if self.share:
            if not self._previous or self._previous[0].last_attn is None:
                raise RuntimeError('a sharing PSBlock runs after its linked predecessor within one forward pass')
            prev_attn = self._previous[0].last_attn
        x, self.last_attn = super().forward(x, prev_attn)  # (B, N_i, D), (B, H, N_i, N_i)
        return x

    def forward_with_attention(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The output tokens (B, N_i, D) and the attention map this block used (B, H, N_i, N_i)."""
        x = self.forward(x)
        return x, self.last_attn


def build_ps_encoder(
        depth: int,
        num_patches: int,
        share_attention: Optional[Sequence[bool]] = None,
        num_tokens: Optional[Sequence[int]] = None,
        pooling: PoolingMode = '2d',
        drop_path: Sequence[float] = (),
        **block_kwargs,
) -> nn.Sequential:
    """EDIT's encoder with PSViT pooling and sharing: one linked `PSBlock` per depth.

    Args:
        depth: Blocks L.
        num_patches: Patch tokens entering the first block.
        share_attention: Per block, reuse the previous block's map (None: none shares).
        num_tokens: Per block, its patch-token count (non-increasing; None: all blocks keep num_patches).
        pooling: '1d' pools the token sequence, '2d' the patch grid.
        drop_path: Stochastic depth rate per block.
        **block_kwargs: `AttentionSharingBlock`'s other arguments.
    """
    share = tuple(bool(s) for s in share_attention) if share_attention is not None else (False,) * depth
    tokens = tuple(num_tokens) if num_tokens is not None else (num_patches,) * depth
    if len(tokens) != depth:
        raise ValueError(f'num_tokens needs one entry per encoder block ({depth}), got {len(tokens)}')
    check_psvit_config((1,) * depth, tokens, share, num_patches, pooling)
    incoming = (num_patches,) + tokens[:-1]
    blocks = [
        PSBlock(share=share[i], num_tokens=tokens[i] if tokens[i] != incoming[i] else None, pooling=pooling,
                drop_path=drop_path[i] if drop_path else 0., **block_kwargs)
        for i in range(depth)]
    for previous, block in zip(blocks[:-1], blocks[1:]):
        block.link(previous)
    return nn.Sequential(*blocks)
