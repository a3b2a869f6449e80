"""editvit: EDIT, the Encoder-Decoder Image Transformer, and tools to study the attention sink in ViTs.

Importing editvit registers its models with timm: `timm.create_model('edit_small_patch16_224')`.
"""
from .models import ClassDecoder, EditVisionTransformer, create_model, vit_to_edit
from .weights import CheckpointError, load_model_weights, read_state_dict, save_model

__version__ = '0.1.0'
__all__ = ['CheckpointError', 'ClassDecoder', 'EditVisionTransformer', 'create_model', 'vit_to_edit', 'load_model_weights',
           'read_state_dict', 'save_model']
