"""`create_model`: the one way editvit builds a model by timm name, for training, evaluation, analysis, segmentation
and experiments: the name and kwargs checked with errors that list the valid choices, then local weights if given."""
import difflib
import inspect
import sys
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import timm
import torch
import torch.nn as nn

from ..errors import ConfigError
from ..weights import load_model_weights
from .hub import has_pretrained_tag, pretrained_source
from .layers.conv_stem import apply_stem


def check_model_name(name: str) -> None:
    """Raise a ConfigError for a name timm (with editvit's models registered) does not know, with close matches."""
    if timm.is_model(name):
        return
    close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
    hint = f'; did you mean {", ".join(close)}?' if close else '; `editvit models "*"` lists them'
    raise ConfigError(f'unknown model {name!r}{hint}')


def model_parameters(name: str) -> Optional[Dict[str, Any]]:
    """The constructor arguments a timm model accepts with their defaults (None if it takes any **kwargs or cannot
    be inspected)."""
    try:
        with torch.device('meta'):  # no memory, no initialisation cost
            cls = type(timm.create_model(name))
    except Exception:  # a model that cannot be built on the meta device is checked by create_model itself
        return None
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return {k: p.default for k, p in params.items() if k != 'self'}


def model_arguments(name: str) -> Optional[Tuple[str, ...]]:
    """The constructor arguments a timm model accepts (None if it takes any **kwargs or cannot be inspected)."""
    params = model_parameters(name)
    return None if params is None else tuple(params)


def check_kwarg_type(name: str, key: str, value: Any, default: Any) -> None:
    """ConfigError for a kwarg whose kind differs from its default's: a flag that is not True/False, a number given
    as text (a misspelt value would otherwise be taken as it is: qkv_bias='maybe' is true)."""
    if isinstance(default, bool) and not isinstance(value, bool):
        raise ConfigError(f'model kwarg {key}={value!r} of {name} must be True or False')
    if isinstance(default, (int, float)) and not isinstance(default, bool) and isinstance(value, (str, bool)):
        raise ConfigError(f'model kwarg {key}={value!r} of {name} must be a number (default {default!r})')


def create_model(name: str, num_classes: Optional[int] = None, model_kwargs: Optional[Mapping[str, Any]] = None, *,
                 checkpoint: Optional[Union[str, Path]] = None, drop_path: Optional[float] = None,
                 layer_scale_init: Optional[float] = None, pretrained: bool = False) -> nn.Module:
    """timm.create_model(name, num_classes=..., **model_kwargs), then the checkpoint's weights if given.

    Without a checkpoint and without `pretrained` the weights are random (timm's initialisation) and no download
    is attempted; a name with a pretrained tag ('deit3_small_patch16_224.fb_in1k') then is an error, so that
    random weights never carry a pretrained name.

    Args:
        name: A timm model name (editvit's are registered on `import editvit`).
        num_classes: Classifier outputs; None keeps the model's default.
        model_kwargs: Constructor kwargs; an unknown one is a ConfigError listing the valid ones. One more key is
            editvit's own, for every ViT with timm's PatchEmbed: `stem` ('patch', the default, or 'conv': the
            convolutional stem of `layers.conv_stem` in place of the patchify projection). It sits among the
            kwargs so that a run's config.yaml rebuilds the same model wherever it is read.
        checkpoint: Local .safetensors or .pth weights, loaded strictly (`load_model_weights`).
        drop_path: Stochastic depth rate (timm's drop_path_rate).
        pretrained: timm's pretrained weights for the name (its tag, or timm's default tag), from the local cache
            or the hub; offline and not cached, a ConfigError at once (see `hub.pretrained_source`).
        layer_scale_init: LayerScale initial value (timm's init_values); 0 builds the model without LayerScale.

    Raises:
        ConfigError: unknown model name or kwarg, or kwargs the constructor rejects.
        CheckpointError: weights that cannot be read or do not fit.
    """
    check_model_name(name)
    if pretrained and checkpoint is not None:
        raise ConfigError('give either pretrained weights or a checkpoint, not both')
    if has_pretrained_tag(name) and not pretrained and checkpoint is None:
        raise ConfigError(f'{name!r} names pretrained weights, but none are loaded: pass --pretrained to use them, '
                          f'--checkpoint FILE for local weights, or drop the tag ({name.split(".")[0]}) for '
                          f'random weights')
    kwargs: Dict[str, Any] = dict(model_kwargs or {})
    stem = kwargs.pop('stem', 'patch')
    if stem != 'patch' and pretrained:
        raise ConfigError(f'stem {stem!r} replaces the patch embedding the pretrained weights hold; drop the stem '
                          f'or --pretrained')
    valid = model_parameters(name)
    if valid is not None:
        for key, value in kwargs.items():
            if key not in valid:
                raise ConfigError(f'unknown model kwarg {key!r} for {name}; valid: {", ".join(valid)}')
            check_kwarg_type(name, key, value, valid[key])
    if num_classes is not None:
        if kwargs.get('num_classes', num_classes) != num_classes:
            raise ConfigError(f"model kwarg num_classes={kwargs['num_classes']} contradicts num_classes={num_classes}; "
                              f"give the number of classes once, with --num-classes")
        kwargs['num_classes'] = num_classes
    if drop_path is not None:
        kwargs['drop_path_rate'] = drop_path
    if layer_scale_init is not None:
        kwargs['init_values'] = layer_scale_init  # 0 turns LayerScale off (timm's blocks test it for truth)
    if pretrained:
        local = pretrained_source(name)
        if local is not None:
            kwargs['pretrained_cfg_overlay'] = dict(file=local)
    try:
        model = timm.create_model(name, pretrained=pretrained, **kwargs)
    except ConfigError:  # sizes a model constructor refused (`sizes.check_vit_sizes`): already names the kwarg
        raise
    except (TypeError, ValueError, ZeroDivisionError, AssertionError, RuntimeError) as e:  # kwargs the layers reject
        raise ConfigError(f'cannot create {name} with {kwargs}: {e or type(e).__name__}') from e
    apply_stem(model, stem)
    check_patch_grid(name, model)
    if checkpoint is not None:
        load_model_weights(model, checkpoint)
    return model


def check_patch_grid(name: str, model: nn.Module) -> None:
    """A warning on stderr for an image size that is not a multiple of the patch size: the patch embedding drops the
    last pixels of every row and column (kept possible: 28-px Fashion-MNIST with 8-px patches is such a set-up)."""
    embed = getattr(model, 'patch_embed', None)
    size, patch = getattr(embed, 'img_size', None), getattr(embed, 'patch_size', None)
    if size is None or patch is None or getattr(embed, 'dynamic_img_pad', False):
        return
    if any(s % p for s, p in zip(size, patch)):
        print(f'warning: {name}: img_size {tuple(size)} is not a multiple of patch_size {tuple(patch)}; the last '
              f'{tuple(s % p for s, p in zip(size, patch))} pixels of the rows and columns are dropped',
              file=sys.stderr)
