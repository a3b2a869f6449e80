"""Token pooling (PSViT, Chen et al., arXiv 2108.03428): fewer tokens in later layers, by average pooling.

Features at the spatial level are redundant when every layer keeps all N patch tokens, so between stages the
patch tokens are pooled to N' < N while the prefix tokens ([CLS]) pass through unchanged:

    1D:  the token sequence (B, N, D) is average-pooled along its length to (B, N', D)
    2D:  the tokens are laid out on their h x w patch grid (B, D, h, w), pooled to h' x w' (N' = h' w'), flattened

Both use adaptive average pooling, so any N' <= N can be asked for (windows overlap when N' does not divide N);
the pooling has no parameters. Where the paper's pooling details could not be checked (kernel, stride, padding, the
[CLS] left unpooled, no projection after pooling), these are our choices.
"""
import math
from typing import Literal, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

PoolingMode = Literal['1d', '2d']


def grid_side(num_tokens: int) -> int:
    """The side of a square token grid, or a clear error if num_tokens is not a square."""
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise ValueError(f'2D token pooling needs square token counts (a side x side grid), got {num_tokens}')
    return side


class TokenPooling(nn.Module):
    """Average-pool the patch tokens to `num_tokens`, leaving the first `num_prefix_tokens` unchanged.

    Args:
        mode: '1d' pools the token sequence, '2d' the square patch grid.
        num_tokens: Patch tokens after pooling N' (a square for '2d').
        num_prefix_tokens: Tokens at the front ([CLS]) that are not pooled.
    """

    def __init__(self, mode: PoolingMode, num_tokens: int, num_prefix_tokens: int = 1) -> None:
        super().__init__()
        if mode not in ('1d', '2d'):
            raise ValueError(f"token pooling mode must be '1d' or '2d', got {mode!r}")
        if mode == '2d':
            grid_side(num_tokens)
        self.mode = mode
        self.num_tokens = num_tokens
        self.num_prefix_tokens = num_prefix_tokens

    def forward(self, x: torch.Tensor, num_tokens: Optional[int] = None) -> torch.Tensor:
        """Pool (B, P + N, D) to (B, P + N', D); `num_tokens` overrides N' (a supernet samples it)."""
        n_out = self.num_tokens if num_tokens is None else num_tokens
        prefix, patches = x[:, :self.num_prefix_tokens], x[:, self.num_prefix_tokens:]  # (B, P, D), (B, N, D)
        B, N, D = patches.shape
        if n_out > N:
            raise ValueError(f'token pooling cannot grow {N} tokens to {n_out}')
        if n_out == N:
            return x
        if self.mode == '1d':
            pooled = F.adaptive_avg_pool1d(patches.transpose(1, 2), n_out).transpose(1, 2)  # (B, N', D)
        else:
            side, side_out = grid_side(N), grid_side(n_out)
            grid = patches.transpose(1, 2).reshape(B, D, side, side)  # (B, D, h, w)
            pooled = F.adaptive_avg_pool2d(grid, side_out).flatten(2).transpose(1, 2)  # (B, N', D)
        return torch.cat([prefix, pooled], dim=1)  # (B, P + N', D)

    def matrix(self, num_in: int, num_tokens: Optional[int] = None) -> torch.Tensor:
        """This pooling of num_in tokens as a float64 matrix T (P + N', num_in): tokens_out = T tokens_in."""
        eye = torch.eye(num_in, dtype=torch.float64)[None]  # (1, num_in, num_in): num_in tokens of width num_in
        return self(eye, num_tokens)[0]  # (P + N', num_in)

    def extra_repr(self) -> str:
        return f'mode={self.mode!r}, num_tokens={self.num_tokens}, num_prefix_tokens={self.num_prefix_tokens}'
