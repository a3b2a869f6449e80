"""EDIT with PSViT's token pooling and attention sharing in its encoder (arXiv 2504.06738 + arXiv 2108.03428).

The encoder's blocks become linked `PSBlock`s (see `layers/ps_block.py`): block i may pool the patch tokens it receives
to N_i and may reuse its predecessor's attention map; the shared decoder then attends, at every depth, to whatever
tokens that depth has. Everything else is `EditVisionTransformer`.

    EDIT, depth i:  p_i = Block_i(Pool_{N_i}(p_(i-1)), A_(i-1) if share_i)       # (B, N_i, D)
                    c_i = ClassDecoder(c_(i-1), p_i)                              # attends to N_i pooled tokens

An own-attention block has timm `Block`'s state-dict keys, so plain EDIT weights load into an EDIT that only pools.

    import editvit, timm
    model = timm.create_model('edit_small_ps_patch16_224')  # 14x14 -> 10x10 -> 7x7 tokens, pairs sharing
    model = timm.create_model('edit_small_ps_patch16_224', share_attention=(False, True) * 6)  # sharing only
"""
from typing import Optional, Sequence, Type

import torch
import torch.nn as nn
from timm.models import generate_default_cfgs, register_model
from timm.models.vision_transformer import Block

from .convert import checkpoint_filter_fn  # noqa: F401  weights.load_model_weights looks beside the model class
from .edit import _BASE, _SMALL, _TINY, EditVisionTransformer, _create_edit
from .edit import _cfg as _edit_cfg
from .layers.ps_block import build_ps_encoder
from .layers.token_pooling import PoolingMode


class PSEditVisionTransformer(EditVisionTransformer):
    """`EditVisionTransformer` whose encoder pools tokens and shares attention maps as PSViT does.

    Args:
        share_attention: Per encoder block, reuse the previous block's attention map (no q/k projections). None:
            every block computes its own.
        num_tokens: Per encoder block, its number of patch tokens (non-increasing); the decoder attends to the pooled
            tokens of each depth. None: no pooling.
        pooling: '1d' pools the token sequence, '2d' the patch grid (only read with num_tokens).
        **kwargs: `EditVisionTransformer`'s arguments (block_fn excepted: these blocks are PSViT's).
    """

    def __init__(self, *args, share_attention: Optional[Sequence[bool]] = None,
                 num_tokens: Optional[Sequence[int]] = None, pooling: PoolingMode = '2d', **kwargs) -> None:
        if kwargs.get('block_fn', Block) is not Block:
            raise ValueError('share_attention / num_tokens build their own encoder blocks; drop block_fn')
        self._ps_args = (share_attention, num_tokens, pooling)  # read by _build_encoder during __init__
        super().__init__(*args, **kwargs)
        del self._ps_args
        self.pooling = pooling if num_tokens is not None else None

    def _build_encoder(self, block_fn: Type[nn.Module], depth: int, drop_path: Sequence[float],
                       **block_kwargs) -> nn.Sequential:
        share_attention, num_tokens, pooling = self._ps_args
        return build_ps_encoder(depth, self.patch_embed.num_patches, share_attention, num_tokens, pooling, drop_path,
                                **block_kwargs)

    def _pooling_matrix(self, block: nn.Module, num_in: int) -> Optional[torch.Tensor]:
        return block.pool.matrix(num_in) if block.pool is not None else None  # (N_i, N_(i-1))


def _create_ps_edit(variant: str, pretrained: bool = False, **kwargs) -> PSEditVisionTransformer:
    return _create_edit(variant, pretrained=pretrained, model_cls=PSEditVisionTransformer, **kwargs)


default_cfgs = generate_default_cfgs({
    'edit_tiny_ps_patch16_224': _edit_cfg(paper_ids='arXiv:2504.06738,arXiv:2108.03428'),
    'edit_small_ps_patch16_224': _edit_cfg(paper_ids='arXiv:2504.06738,arXiv:2108.03428'),
    'edit_base_ps_patch16_224': _edit_cfg(paper_ids='arXiv:2504.06738,arXiv:2108.03428'),
})

# Our configuration, after the PSViT models in psvit.py: the 12 blocks in three stages of 4 on 14x14 -> 10x10 -> 7x7
# tokens, the second block of every pair sharing its partner's map. Passing num_tokens or share_attention (one entry
# per block) replaces it: what is not passed is then off (no pooling, or no sharing).
_PS = dict(num_tokens=(196,) * 4 + (100,) * 4 + (49,) * 4, share_attention=(False, True) * 6)


def _ps_args(size: dict, kwargs: dict) -> dict:
    chosen = any(kwargs.get(k) is not None for k in ('num_tokens', 'share_attention'))
    return {**size, **({} if chosen else _PS), **kwargs}


@register_model
def edit_tiny_ps_patch16_224(pretrained: bool = False, **kwargs) -> PSEditVisionTransformer:
    """EDIT-Tiny @ 224 with PSViT token pooling and attention sharing in its encoder."""
    return _create_ps_edit('edit_tiny_ps_patch16_224', pretrained=pretrained, **_ps_args(_TINY, kwargs))


@register_model
def edit_small_ps_patch16_224(pretrained: bool = False, **kwargs) -> PSEditVisionTransformer:
    """EDIT-Small @ 224 with PSViT token pooling and attention sharing in its encoder."""
    return _create_ps_edit('edit_small_ps_patch16_224', pretrained=pretrained, **_ps_args(_SMALL, kwargs))


@register_model
def edit_base_ps_patch16_224(pretrained: bool = False, **kwargs) -> PSEditVisionTransformer:
    """EDIT-Base @ 224 with PSViT token pooling and attention sharing in its encoder."""
    return _create_ps_edit('edit_base_ps_patch16_224', pretrained=pretrained, **_ps_args(_BASE, kwargs))
