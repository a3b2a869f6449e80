"""Setting up the model of a run: the input size it takes, and the fine-tuning weights it starts from."""
from pathlib import Path
from typing import Tuple, Union

import torch.nn as nn

from ..weights import adapt_state_dict, check_fits, check_values, read_state_dict


def input_size(model: nn.Module) -> Tuple[int, int]:
    """(H, W) the model takes: its patch embedding's image size, else its pretrained config's input size."""
    size = getattr(getattr(model, 'patch_embed', None), 'img_size', None)
    if size is None:
        size = model.pretrained_cfg['input_size'][1:]
    return tuple(size) if isinstance(size, (tuple, list)) else (size, size)


def load_finetune_weights(model: nn.Module, source: Union[str, Path]) -> nn.Module:
    """Start fine-tuning from a checkpoint: the adaptations of the model module's `checkpoint_filter_fn` (for EDIT:
    DeiT3 -> EDIT conversion and position-embedding resampling; for timm ViTs: resampling), then a fresh head
    wherever the checkpoint's classifier does not fit the new number of classes. Anything else that does not fit
    is a CheckpointError."""
    state_dict = adapt_state_dict(model, read_state_dict(source), source=str(source))
    own = model.state_dict()
    classifiers = model.pretrained_cfg.get('classifier', 'head')
    for prefix in (classifiers,) if isinstance(classifiers, str) else classifiers:
        for key in [k for k in own if k.startswith(prefix + '.')]:
            if key not in state_dict or state_dict[key].shape != own[key].shape:
                state_dict[key] = own[key]  # the model's freshly initialised head
    check_fits(model, state_dict, source=str(source))
    check_values(model, state_dict, source=str(source))
    model.load_state_dict(state_dict)
    return model
