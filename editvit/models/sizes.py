"""The sizes a ViT can be built with, checked before any layer is: every model constructor (EDIT, PS-EDIT, PSViT,
the CB models) calls `check_vit_sizes`, so the API and every command refuse a degenerate model the same way.

Without it, `depth=0` built an encoder without blocks that trained without a word, a patch larger than the image a
model without tokens, and the rest failed inside the layers with a raw error (`integer division or modulo by zero`,
`dim should be divisible by num_heads`).
"""
import math
from typing import Any, Optional, Sequence, Tuple, Union

from ..errors import ConfigError


def _count(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f'model kwarg {name}={value!r} is out of range: it must be an integer >= {low}')
    return value


def _pair(name: str, value: Union[int, Sequence[int]]) -> Tuple[int, int]:
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2:
        raise ConfigError(f'model kwarg {name}={value!r} must be one integer or two (height, width)')
    for v in pair:
        _count(name, v)
    return pair


def check_vit_sizes(*, img_size: Union[int, Sequence[int]], patch_size: Union[int, Sequence[int]], embed_dim: int,
                    num_heads: int, depth: Optional[int] = None, in_chans: int = 3, mlp_ratio: float = 4.,
                    decoder_heads: Optional[int] = None) -> None:
    """Raise a ConfigError naming the model kwarg and its valid range for sizes no model can be built with.

    Args:
        depth: Encoder blocks (None for a model that counts them otherwise, as PSViT's `depths`).
        decoder_heads: EDIT's decoder heads (None for a model without a decoder).
    """
    size, patch = _pair('img_size', img_size), _pair('patch_size', patch_size)
    if any(p > s for p, s in zip(patch, size)):
        raise ConfigError(f'model kwarg patch_size={patch_size!r} is out of range: it must be between 1 and the '
                          f'image size img_size={img_size!r}, so that the image holds at least one patch')
    _count('in_chans', in_chans)
    _count('embed_dim', embed_dim)
    if depth is not None:
        _count('depth', depth)
    for name, heads in (('num_heads', num_heads), ('decoder_heads', decoder_heads)):
        if heads is not None and _count(name, heads) and embed_dim % heads:
            raise ConfigError(f'model kwarg {name}={heads} does not divide embed_dim={embed_dim}: the heads split '
                              f'the width evenly; choose a divisor of {embed_dim}')
    if isinstance(mlp_ratio, bool) or not isinstance(mlp_ratio, (int, float)) or not 0 < mlp_ratio < math.inf \
            or int(embed_dim * mlp_ratio) < 1:
        raise ConfigError(f'model kwarg mlp_ratio={mlp_ratio!r} is out of range: it must be a finite number > 0 '
                          f'(an MLP of at least one unit)')
