"""The ways to treat the [CLS] token that the suite compares, all at one width, depth and head count.

Each variant is a timm model name plus the arguments that make it that variant:

  edit        EDIT: [CLS] leaves the encoder and is refined by a decoder layer per encoder layer (the paper).
  deit3       DeiT3: [CLS] joins self-attention in every layer (the paper's baseline).
  deit3_cb    DeiT3 + Context Broadcasting (Hyeon-Woo et al. 2023) in every block.
  edit_cb     EDIT + Context Broadcasting in every encoder block.
  psvit       PSViT-2D: token pooling over 3 stages and attention shared by pairs of layers.
  deit3_gap   DeiT3 without [CLS]: global average pooling of the patch tokens (Beyer et al. 2022).
  deit3_reg4  DeiT3 with 4 register tokens (Darcet et al. 2024; timm's reg_tokens).
  cait        CaiT-style: self-attention on the patches only, then class attention in the last two layers
              (Touvron et al. 2021; timm's Cait with talking-heads self-attention, its own design).
"""
import math
from typing import Any, Dict, Tuple

from .budget import Budget

VARIANTS = ('edit', 'deit3', 'deit3_cb', 'edit_cb', 'psvit', 'deit3_gap', 'deit3_reg4', 'cait')
CLASS_ATTENTION_LAYERS = 2  # CaiT's depth_token_only


def psvit_stages(depth: int, grid: int) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
    """(layers per stage, tokens per stage) for PSViT-2D at this depth: three stages as equal as possible, on grids
    of grid, ceil(0.7 grid) and ceil(grid / 2) (8x8 -> 6x6 -> 4x4 for 32 px with patch 4), like the paper's
    14x14 -> 10x10 -> 7x7."""
    if depth < 3:
        raise ValueError(f'psvit needs depth >= 3 (three stages), got {depth}')
    depths = tuple(depth // 3 + (1 if i < depth % 3 else 0) for i in range(3))
    sides = (grid, math.ceil(0.7 * grid), math.ceil(grid / 2))
    return depths, tuple(s * s for s in sides)


def variant_model(variant: str, budget: Budget, img_size: int) -> Tuple[str, Dict[str, Any]]:
    """(timm model name, create_model kwargs) of a variant at the budget's size for img_size inputs."""
    if variant not in VARIANTS:
        raise ValueError(f'unknown variant {variant!r}; choose from {", ".join(VARIANTS)}')
    size = dict(img_size=img_size, patch_size=budget.patch_size, embed_dim=budget.embed_dim,
                num_heads=budget.num_heads)
    if budget.stem != 'patch':
        size['stem'] = budget.stem
    depth = dict(depth=budget.depth)
    if variant == 'edit':
        return 'edit_tiny_patch16_224', {**size, **depth}
    if variant == 'edit_cb':
        return 'edit_tiny_cb_patch16_224', {**size, **depth}
    if variant == 'deit3':
        return 'deit3_small_patch16_224', {**size, **depth}
    if variant == 'deit3_cb':
        return 'deit3_small_cb_patch16_224', {**size, **depth}
    if variant == 'deit3_gap':
        return 'deit3_small_patch16_224', {**size, **depth, 'global_pool': 'avg', 'class_token': False}
    if variant == 'deit3_reg4':
        return 'deit3_small_patch16_224', {**size, **depth, 'reg_tokens': 4}
    if variant == 'cait':
        if budget.depth <= CLASS_ATTENTION_LAYERS:
            raise ValueError(f'cait needs depth > {CLASS_ATTENTION_LAYERS}, got {budget.depth}')
        return 'cait_xxs24_224', {**size, 'depth': budget.depth - CLASS_ATTENTION_LAYERS,
                                  'depth_token_only': CLASS_ATTENTION_LAYERS, 'init_values': 1e-6}
    depths, tokens = psvit_stages(budget.depth, img_size // budget.patch_size)
    share = tuple(i % 2 == 1 for d in depths for i in range(d))  # the second layer of each pair shares its map
    return 'psvit_2d_tiny', {**size, 'depths': list(depths), 'num_tokens': list(tokens),
                             'share_attention': list(share), 'init_values': 1e-6}
