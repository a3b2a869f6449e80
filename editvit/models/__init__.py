"""editvit models, registered with timm on import."""
from .convert import checkpoint_filter_fn, vit_to_edit, resample_pos_embed
from .edit import EditVisionTransformer
from .factory import create_model
from . import cb_models  # noqa: F401  registers deit3_*_cb_* and edit_*_cb_*
from .ps_edit import PSEditVisionTransformer  # registers edit_*_ps_*
from .psvit import PSViT
from .layers.class_decoder import ClassDecoder

__all__ = ['ClassDecoder', 'EditVisionTransformer', 'PSEditVisionTransformer', 'PSViT', 'checkpoint_filter_fn',
           'create_model', 'resample_pos_embed', 'vit_to_edit']
