"""Creating the model of a run by timm name, with its kwargs checked, and loading fine-tuning weights."""
import difflib
import inspect
import sys
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import timm
import torch
import torch.nn as nn

from ..weights import check_fits, read_state_dict
from .config import ConfigError


def check_model_name(name: str) -> None:
    if timm.is_model(name):
        return
    close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
    hint = f'; did you mean {", ".join(close)}?' if close else '; `editvit models "*"` lists them'
    raise ConfigError(f'unknown model {name!r}{hint}')


def model_arguments(name: str) -> Optional[Tuple[str, ...]]:
    """The constructor arguments a timm model accepts (None if it takes any **kwargs or cannot be inspected)."""
    try:
        with torch.device('meta'):  # no memory, no initialisation cost
            cls = type(timm.create_model(name))
    except Exception:  # a model that cannot be built on the meta device is checked by create_model itself
        return None
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return tuple(p for p in params if p != 'self')


def create_model(name: str, num_classes: int, model_kwargs: Optional[Mapping[str, Any]] = None,
                 drop_path: Optional[float] = None, layer_scale_init: Optional[float] = None) -> nn.Module:
    """timm.create_model(name, num_classes=..., **model_kwargs), failing with a ConfigError that names an unknown
    model or an unknown kwarg and lists the valid ones."""
    check_model_name(name)
    kwargs: Dict[str, Any] = dict(model_kwargs or {})
    valid = model_arguments(name)
    if valid is not None:
        for key in kwargs:
            if key not in valid:
                raise ConfigError(f'unknown model kwarg {key!r} for {name}; valid: {", ".join(valid)}')
    if drop_path is not None:
        kwargs['drop_path_rate'] = drop_path
    if layer_scale_init is not None:
        kwargs['init_values'] = layer_scale_init
    try:
        return timm.create_model(name, num_classes=num_classes, **kwargs)
    except TypeError as e:
        raise ConfigError(f'cannot create {name} with {kwargs}: {e}') from e


def input_size(model: nn.Module) -> Tuple[int, int]:
    """(H, W) the model takes: its patch embedding's image size, else its pretrained config's input size."""
    size = getattr(getattr(model, 'patch_embed', None), 'img_size', None)
    if size is None:
        size = model.pretrained_cfg['input_size'][1:]
    return tuple(size) if isinstance(size, (tuple, list)) else (size, size)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DistributedDataParallel and torch.compile wrappers."""
    while True:
        if hasattr(model, 'module'):
            model = model.module
        elif hasattr(model, '_orig_mod'):
            model = model._orig_mod
        else:
            return model


def load_finetune_weights(model: nn.Module, source: Union[str, Path]) -> nn.Module:
    """Start fine-tuning from a checkpoint: the adaptations of the model module's `checkpoint_filter_fn` (for EDIT:
    DeiT3 -> EDIT conversion and position-embedding resampling; for timm ViTs: resampling), then a fresh head
    wherever the checkpoint's classifier does not fit the new number of classes. Anything else that does not fit
    is a CheckpointError."""
    state_dict = read_state_dict(source)
    filter_fn = getattr(sys.modules.get(type(model).__module__), 'checkpoint_filter_fn', None)
    if filter_fn is not None:
        state_dict = filter_fn(state_dict, model)
    own = model.state_dict()
    classifiers = model.pretrained_cfg.get('classifier', 'head')
    for prefix in (classifiers,) if isinstance(classifiers, str) else classifiers:
        for key in [k for k in own if k.startswith(prefix + '.')]:
            if key not in state_dict or state_dict[key].shape != own[key].shape:
                state_dict[key] = own[key]  # the model's freshly initialised head
    check_fits(model, state_dict, source=str(source))
    model.load_state_dict(state_dict)
    return model
