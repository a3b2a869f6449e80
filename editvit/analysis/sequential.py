"""The sequential attention maps of the paper's Fig. 5: one map over the patch grid per layer and image."""
from typing import Tuple

import torch

from .extract import AttentionMaps
from .rollout import cls_rollout

METHODS = ('attention', 'rollout')


def sequential_attention_maps(maps: AttentionMaps, method: str = 'attention') -> Tuple[torch.Tensor, str]:
    """Per-layer maps over the patch grid, (B, L, h, w), and a label saying what they show.

    method 'attention': the [CLS] query's attention to each patch, averaged over heads: EDIT's decoder attention
    (Fig. 5), or the [CLS] row of a ViT's self-attention. For a model without a [CLS] query, the mean attention
    each patch receives from the patch queries. method 'rollout': attention rollout (`rollout.cls_rollout`).
    """
    if method not in METHODS:
        raise ValueError(f'method must be one of {METHODS}, got {method!r}')
    B, L = maps.attention.shape[:2]
    h, w = maps.grid_size
    P = maps.num_prefix_tokens
    if method == 'rollout':
        values, label = cls_rollout(maps), 'attention rollout of [CLS]' if maps.has_cls or \
            maps.decoder_attention is not None else 'attention rollout, mean over patches'
    elif maps.decoder_attention is not None:
        values, label = maps.decoder_attention[..., 1:].mean(dim=2), 'decoder attention of [CLS] to patches'
    elif maps.has_cls:
        values, label = maps.attention[:, :, :, 0, P:].mean(dim=2), 'attention of [CLS] to patches'
    else:
        values, label = maps.attention[:, :, :, P:, P:].mean(dim=(2, 3)), 'attention received by each patch'
    return values.float().reshape(B, L, h, w), label  # (B, L, h, w)
