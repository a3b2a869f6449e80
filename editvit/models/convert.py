"""Adapting weights to an EDIT model: warm start from any timm ViT with a [CLS] token (DeiT3, DeiT, ViT, DINOv2),
position-embedding resampling, head changes.

ViT -> EDIT mapping (a timm VisionTransformer state dict, e.g. deit3_small_patch16_224.fb_in1k or a DINOv2-S/14):

    patch_embed.*         -> patch_embed.*        copied
    pos_embed (1, P+N, D) -> pos_embed (1, N, D)  the P prefix slots ([CLS], and registers where they have one) are
                                                  dropped: EDIT's encoder holds patches only; DeiT3 has P = 0;
                                                  resampled if the patch grid differs
    blocks.i.*            -> blocks.i.*           copied: the encoder is the ViT's trunk (LayerScale included)
    cls_token (1, 1, D)   -> cls_token            the ViT's [CLS] seeds the decoder query
    reg_token             -> (dropped)            EDIT has no register tokens
    norm.*, head.*        -> norm.*, head.*       copied (head only if its class count matches)
    (none)                -> decoder.*            fresh: taken from the EDIT model's own initialisation

The encoder then computes exactly what the ViT's blocks compute on the patch tokens alone (without [CLS] in the
sequence); what changes is that no patch can attend to [CLS] any more.
"""
import math
from typing import Dict

import torch
import torch.nn as nn
from timm.layers import resample_abs_pos_embed

from ..weights import clean_state_dict


def is_vit_state_dict(state_dict: Dict[str, torch.Tensor]) -> bool:
    """A timm ViT (DeiT, DeiT3, DINOv2, ...) state dict: a trunk of blocks, but no EDIT decoder."""
    return 'blocks.0.attn.qkv.weight' in state_dict and not any(k.startswith('decoder.') for k in state_dict)


def resample_pos_embed(pos_embed: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """Resample a patch-only position embedding (1, N', D) to the model's patch grid (1, N, D), bicubic."""
    grid = list(model.patch_embed.grid_size)
    if pos_embed.shape[1] == grid[0] * grid[1]:
        return pos_embed
    return resample_abs_pos_embed(pos_embed, new_size=grid, num_prefix_tokens=0, verbose=False)


def _patch_positions(pos_embed: torch.Tensor) -> torch.Tensor:
    """The patch part (1, N, D) of a position embedding (1, P+N, D) whose P prefix slots come first (timm's order)
    and whose N patches form a square grid."""
    count = pos_embed.shape[1]
    for prefix in range(0, min(count, 17)):
        side = math.isqrt(count - prefix)
        if side * side == count - prefix:
            return pos_embed[:, prefix:]
    raise ValueError(f'position embedding of {count} slots is not a square patch grid after up to 16 prefix slots')


def vit_to_edit(state_dict: Dict[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    """Turn a timm ViT state dict (DeiT3, DeiT, ViT, DINOv2, ...) into a state dict for `model`, an
    EditVisionTransformer of the same width, depth and heads (see the mapping in the module docstring).

    The decoder, which the ViT does not have, is taken from `model` as initialised. The head is kept when its shape
    fits the model and otherwise taken from `model` (a fresh head for a new number of classes).
    """
    own = model.state_dict()
    out = {k: v for k, v in state_dict.items() if k.startswith(('patch_embed.', 'blocks.', 'norm.'))}
    if 'cls_token' in state_dict:
        out['cls_token'] = state_dict['cls_token'].reshape(own['cls_token'].shape)
    out['pos_embed'] = resample_pos_embed(_patch_positions(state_dict['pos_embed']), model)  # (1, N, D)
    for k in ('head.weight', 'head.bias'):
        if k in own:
            fits = k in state_dict and state_dict[k].shape == own[k].shape
            out[k] = state_dict[k] if fits else own[k]
    for k, v in own.items():
        if k.startswith('decoder.'):
            out[k] = v
    return out


def checkpoint_filter_fn(state_dict: Dict[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    """timm's pretrained filter for EDIT: convert ViT weights (DeiT3, DINOv2, ...), resample the position embedding to
    the model's grid (e.g. 224 -> 384 fine-tuning, paper Fig. 4b). Keys that do not fit are left for the strict load to
    name."""
    state_dict = clean_state_dict(state_dict)
    if is_vit_state_dict(state_dict):
        return vit_to_edit(state_dict, model)
    if 'pos_embed' in state_dict:
        state_dict = dict(state_dict, pos_embed=resample_pos_embed(state_dict['pos_embed'], model))
    return state_dict
