"""editvit: EDIT, the Encoder-Decoder Image Transformer, and tools to study the attention sink in ViTs.

Importing editvit registers its models with timm: `timm.create_model('edit_small_patch16_224')`.
"""
try:
    from .models import ClassDecoder, EditVisionTransformer, create_model, vit_to_edit
    from .weights import CheckpointError, load_model_weights, read_state_dict, save_model
except KeyboardInterrupt:
    # Ctrl-C in the first seconds of the `editvit` command, while torch loads: the command's one line, exit code 130
    from .cli import exit_if_interrupted_at_start
    exit_if_interrupted_at_start()
    raise

__version__ = '0.1.0'
__all__ = ['CheckpointError', 'ClassDecoder', 'EditVisionTransformer', 'create_model', 'vit_to_edit',
           'load_model_weights', 'read_state_dict', 'save_model']
