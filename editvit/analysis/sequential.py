"""The sequential attention maps of the paper's Fig. 5: one map over the input patch grid per layer and image."""
from typing import Tuple

import torch

from .maps import AttentionMaps
from .rollout import cls_rollout

METHODS = ('attention', 'rollout')


def sequential_attention_maps(maps: AttentionMaps, method: str = 'attention') -> Tuple[torch.Tensor, str]:
    """Per-layer maps over the input patch grid, (B, L, h, w), and a label saying what they show.

    method 'attention': the [CLS] query's attention to each patch, averaged over heads: EDIT's decoder attention
    (Fig. 5), or the [CLS] row of a ViT's self-attention. For a model without a [CLS] query, the mean attention
    each patch receives from the patch queries. method 'rollout': attention rollout (`rollout.cls_rollout`).
    After token pooling (PSViT) a pooled token's attention is spread over the input patches it averages
    (`AttentionMaps.to_input_patches`), so every layer is drawn on the same grid.
    """
    if method not in METHODS:
        raise ValueError(f'method must be one of {METHODS}, got {method!r}')
    B, L = maps.batch_size, maps.num_layers
    h, w = maps.grid_size
    P = maps.num_prefix_tokens
    if method == 'rollout':
        values, label = cls_rollout(maps), 'attention rollout of [CLS]' if maps.has_cls or \
            maps.decoder_attention is not None else 'attention rollout, mean over patches'
    else:
        if maps.decoder_attention is not None:
            per_layer, label = [a[..., 1:].mean(dim=1) for a in maps.decoder_attention], \
                'decoder attention of [CLS] to patches'
        elif maps.has_cls:
            per_layer, label = [a[:, :, 0, P:].mean(dim=1) for a in maps.attention], 'attention of [CLS] to patches'
        else:
            per_layer, label = [a[:, :, P:, P:].mean(dim=(1, 2)) for a in maps.attention], \
                'attention received by each patch'
        values = torch.stack([maps.to_input_patches(v.float(), layer) for layer, v in enumerate(per_layer)],
                             dim=1)  # (B, L, h * w)
    return values.float().reshape(B, L, h, w), label  # (B, L, h, w)
