"""Context Broadcasting (CB) models: DeiT3 and EDIT with uniform attention in every block (arXiv 2210.08457).

CB adds no parameters, so each CB model has exactly its plain model's state dict: DeiT3 weights load into
`deit3_*_cb_*` (timm's `VisionTransformer` with a `ContextBroadcastBlock`), EDIT weights into `edit_*_cb_*`.

    import editvit, timm
    model = timm.create_model('edit_small_cb_patch16_224')
    model.load_state_dict(timm.create_model('edit_small_patch16_224').state_dict())  # same keys

Pass `cb_dim_scale=True` for the dimension-scaled variant CB_S (D parameters per block, see `ContextBroadcast`).
"""
from functools import partial
from typing import Any, Dict

from timm.models import generate_default_cfgs, register_model
from timm.models.deit import _cfg as _deit_cfg
from timm.models.deit import _create_deit
from timm.models.vision_transformer import VisionTransformer

from .edit import _BASE, _SMALL, _TINY, EditVisionTransformer, _create_edit
from .edit import _cfg as _edit_cfg
from .layers.cb_block import ContextBroadcastBlock
from .sizes import check_vit_sizes


def _cb_block(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """Move `cb_dim_scale` from the model kwargs into the block class."""
    kwargs = dict(kwargs)
    dim_scale = kwargs.pop('cb_dim_scale', False)
    kwargs['block_fn'] = partial(ContextBroadcastBlock, cb_dim_scale=dim_scale) if dim_scale else ContextBroadcastBlock
    return kwargs


def _deit3_cb_kwargs(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """`_cb_block`, with the sizes checked first: timm's VisionTransformer does not check them."""
    sizes = ('img_size', 'patch_size', 'in_chans', 'embed_dim', 'depth', 'num_heads', 'mlp_ratio')
    check_vit_sizes(**dict(dict(img_size=224), **{k: kwargs[k] for k in sizes if k in kwargs}))
    return _cb_block(kwargs)


def _deit3_cb_cfg(plain: str, **kwargs) -> Dict[str, Any]:
    # pretrained=True loads the plain DeiT3 weights from the hub (same keys); CB itself has no weights to host
    return _deit_cfg(hf_hub_id=f'timm/{plain}', paper_ids='arXiv:2204.07118,arXiv:2210.08457', **kwargs)


default_cfgs = generate_default_cfgs({
    'deit3_small_cb_patch16_224.fb_in1k': _deit3_cb_cfg('deit3_small_patch16_224.fb_in1k'),
    'deit3_base_cb_patch16_224.fb_in1k': _deit3_cb_cfg('deit3_base_patch16_224.fb_in1k'),
    'edit_tiny_cb_patch16_224': _edit_cfg(paper_ids='arXiv:2504.06738,arXiv:2210.08457'),
    'edit_small_cb_patch16_224': _edit_cfg(paper_ids='arXiv:2504.06738,arXiv:2210.08457'),
    'edit_base_cb_patch16_224': _edit_cfg(paper_ids='arXiv:2504.06738,arXiv:2210.08457'),
})

# timm's deit3_*_patch16_224 arguments
_DEIT3_SMALL = dict(patch_size=16, embed_dim=384, depth=12, num_heads=6, no_embed_class=True, init_values=1e-6)
_DEIT3_BASE = dict(patch_size=16, embed_dim=768, depth=12, num_heads=12, no_embed_class=True, init_values=1e-6)


@register_model
def deit3_small_cb_patch16_224(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """DeiT3-Small @ 224 with Context Broadcasting in every block (same parameters as deit3_small_patch16_224)."""
    return _create_deit('deit3_small_cb_patch16_224', pretrained=pretrained,
                        **_deit3_cb_kwargs(dict(_DEIT3_SMALL, **kwargs)))


@register_model
def deit3_base_cb_patch16_224(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """DeiT3-Base @ 224 with Context Broadcasting in every block (same parameters as deit3_base_patch16_224)."""
    return _create_deit('deit3_base_cb_patch16_224', pretrained=pretrained,
                        **_deit3_cb_kwargs(dict(_DEIT3_BASE, **kwargs)))


@register_model
def edit_tiny_cb_patch16_224(pretrained: bool = False, **kwargs) -> EditVisionTransformer:
    """EDIT-Tiny @ 224 with Context Broadcasting in every encoder block (same parameters as edit_tiny_patch16_224)."""
    return _create_edit('edit_tiny_cb_patch16_224', pretrained=pretrained, **_cb_block(dict(_TINY, **kwargs)))


@register_model
def edit_small_cb_patch16_224(pretrained: bool = False, **kwargs) -> EditVisionTransformer:
    """EDIT-Small @ 224 with Context Broadcasting in every encoder block (same parameters as edit_small_patch16_224)."""
    return _create_edit('edit_small_cb_patch16_224', pretrained=pretrained, **_cb_block(dict(_SMALL, **kwargs)))


@register_model
def edit_base_cb_patch16_224(pretrained: bool = False, **kwargs) -> EditVisionTransformer:
    """EDIT-Base @ 224 with Context Broadcasting in every encoder block (same parameters as edit_base_patch16_224)."""
    return _create_edit('edit_base_cb_patch16_224', pretrained=pretrained, **_cb_block(dict(_BASE, **kwargs)))
