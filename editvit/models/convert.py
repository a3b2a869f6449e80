"""Adapting weights to an EDIT model: DeiT3 warm start, position-embedding resampling, head changes.

DeiT3 -> EDIT mapping (a timm `deit3_*` state dict, e.g. deit3_small_patch16_224.fb_in1k):

    patch_embed.*         -> patch_embed.*        copied
    pos_embed (1, N, D)   -> pos_embed            copied (DeiT3 has no [CLS] position; a DeiT/ViT [CLS] slot is
                                                  dropped), resampled if the patch grid differs
    blocks.i.*            -> blocks.i.*           copied: the encoder is DeiT3's trunk
    cls_token (1, 1, D)   -> cls_token            DeiT3's [CLS] seeds the decoder query
    norm.*, head.*        -> norm.*, head.*       copied (head only if its class count matches)
    (none)                -> decoder.*            fresh: taken from the EDIT model's own initialisation
"""
from typing import Dict

import torch
import torch.nn as nn
from timm.layers import resample_abs_pos_embed

from ..weights import clean_state_dict


def is_deit3_state_dict(state_dict: Dict[str, torch.Tensor]) -> bool:
    """A timm ViT/DeiT/DeiT3 state dict: a trunk of blocks and a [CLS] token, but no EDIT decoder."""
    return 'blocks.0.attn.qkv.weight' in state_dict and not any(k.startswith('decoder.') for k in state_dict)


def resample_pos_embed(pos_embed: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """Resample a patch-only position embedding (1, N', D) to the model's patch grid (1, N, D), bicubic."""
    grid = list(model.patch_embed.grid_size)
    if pos_embed.shape[1] == grid[0] * grid[1]:
        return pos_embed
    return resample_abs_pos_embed(pos_embed, new_size=grid, num_prefix_tokens=0, verbose=False)


def deit3_to_edit(state_dict: Dict[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    """Turn a timm DeiT3 (or ViT/DeiT) state dict into a state dict for `model`, an EditVisionTransformer.

    The decoder, which DeiT3 does not have, is taken from `model` as initialised. The head is kept when its shape
    fits the model and otherwise taken from `model` (a fresh head for a new number of classes).
    """
    own = model.state_dict()
    out = {}
    for k, v in state_dict.items():
        if k.startswith(('patch_embed.', 'blocks.', 'norm.')):
            out[k] = v
    if 'cls_token' in state_dict:
        out['cls_token'] = state_dict['cls_token'].reshape(own['cls_token'].shape)
    pos = state_dict['pos_embed']
    src_grid = int((pos.shape[1]) ** 0.5)
    if src_grid * src_grid != pos.shape[1]:  # DeiT/ViT keep a [CLS] slot first; EDIT's patches have no [CLS]
        pos = pos[:, 1:]
    out['pos_embed'] = resample_pos_embed(pos, model)
    for k in ('head.weight', 'head.bias'):
        if k in own:
            fits = k in state_dict and state_dict[k].shape == own[k].shape
            out[k] = state_dict[k] if fits else own[k]
    for k, v in own.items():
        if k.startswith('decoder.'):
            out[k] = v
    return out


def checkpoint_filter_fn(state_dict: Dict[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    """timm's pretrained filter for EDIT: convert DeiT3 weights, resample the position embedding to the model's
    grid (e.g. 224 -> 384 fine-tuning, paper Fig. 4b). Keys that do not fit are left for the strict load to name."""
    state_dict = clean_state_dict(state_dict)
    if is_deit3_state_dict(state_dict):
        return deit3_to_edit(state_dict, model)
    if 'pos_embed' in state_dict:
        state_dict = dict(state_dict, pos_embed=resample_pos_embed(state_dict['pos_embed'], model))
    return state_dict
