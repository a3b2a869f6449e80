"""A PSViT layer plan (Chen et al., arXiv 2108.03428): stages of layers, their token counts and which layers share.

Token counts may only shrink from stage to stage, and a layer may share only when its predecessor ran over the same
tokens: the first layer of the model, and the first layer of a stage whose token count changes, compute their own map.
"""
from typing import List, Sequence

from .token_pooling import PoolingMode, grid_side


def check_psvit_config(depths: Sequence[int], num_tokens: Sequence[int], share_attention: Sequence[bool],
                       num_patches: int, pooling: PoolingMode) -> None:
    """Raise a ValueError naming the problem if the stages, token numbers or sharing pattern do not fit."""
    if len(depths) != len(num_tokens) or not depths:
        raise ValueError(f'depths {tuple(depths)} and num_tokens {tuple(num_tokens)} must give one entry per stage')
    if any(d < 1 for d in depths):
        raise ValueError(f'every stage needs at least one layer, got depths {tuple(depths)}')
    previous = num_patches
    for s, n in enumerate(num_tokens):
        if not 1 <= n <= previous:
            raise ValueError(f'stage {s} asks for {n} tokens but receives {previous}: token numbers may only shrink '
                             f'(the patch grid has {num_patches})')
        if pooling == '2d':
            grid_side(n)
        previous = n
    if len(share_attention) != sum(depths):
        raise ValueError(f'share_attention needs one entry per layer ({sum(depths)}), got {len(share_attention)}')
    for i in stage_starts(depths, num_tokens, num_patches):
        if share_attention[i]:
            raise ValueError(f'layer {i} cannot share attention: it is the first layer of the model or of a stage '
                             f'whose token count changes, so no previous map of its size exists')


def stage_starts(depths: Sequence[int], num_tokens: Sequence[int], num_patches: int) -> List[int]:
    """Layers that have no previous attention map of their size: layer 0 and every layer right after pooling."""
    starts, layer, previous = [0], 0, num_patches
    for d, n in zip(depths, num_tokens):
        if layer > 0 and n != previous:
            starts.append(layer)
        layer, previous = layer + d, n
    return starts
