"""Which model an analysis reads, and with which weights: a timm name with kwargs and a checkpoint, timm's
pretrained weights, or a training run's folder. Building it reports what was built (resolution, tokens, where the
weights came from), so that no number describes a model other than the one the user meant.
"""
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import torch.nn as nn
import yaml

from ..errors import ConfigError
from ..models.factory import create_model
from ..weights import read_state_dict

PathLike = Union[str, Path]
RUN_WEIGHTS = ('model.safetensors', 'checkpoint-last.pth')


@dataclass
class ModelSpec:
    """A model to analyse.

    Attributes:
        name: timm model name (EDIT, PSViT, or any timm ViT; a pretrained tag with `pretrained`).
        checkpoint: Local weights (.safetensors or .pth); None with `pretrained` False means random weights.
        model_kwargs: Constructor kwargs (img_size=224, num_classes=0, ...).
        pretrained: timm's pretrained weights (cached or downloaded).
        label: The name shown in pictures and metrics; default the name, plus the checkpoint's file or folder.
    """
    name: str
    checkpoint: Optional[PathLike] = None
    model_kwargs: Dict[str, Any] = field(default_factory=dict)
    pretrained: bool = False
    label: Optional[str] = None

    @classmethod
    def from_run(cls, run: PathLike) -> 'ModelSpec':
        """The model a training run in `run` trained: its config.yaml's model and kwargs, the class count of its
        data set, and its final weights (or, for an unfinished run, those of its last checkpoint)."""
        run = Path(run)
        config_path = run / 'config.yaml'
        if not config_path.is_file():
            raise ConfigError(f'{str(run)!r} is not a run folder: it has no config.yaml')
        try:
            config = yaml.safe_load(config_path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f'{str(config_path)!r} is not valid YAML: {str(e).splitlines()[0]}') from e
        weights = next((run / n for n in RUN_WEIGHTS if (run / n).is_file()), None)
        if weights is None or not isinstance(config, dict) or not config.get('model'):
            raise ConfigError(f'{str(run)!r} holds no trained weights ({" or ".join(RUN_WEIGHTS)}) or no model in '
                              f'its config.yaml')
        if 'decoder' in config:
            raise ConfigError(f'{str(run)!r} holds a segmentation run; analyze takes classification runs, or its '
                              f'backbone with --model {config["model"]} and --checkpoint')
        kwargs = dict(config.get('model_kwargs') or {})
        if config.get('layer_scale_init') is not None:  # the trainer passed it as init_values; 0 means no LayerScale
            kwargs.setdefault('init_values', config['layer_scale_init'])
        head = read_state_dict(weights).get('head.weight')
        if head is not None:
            kwargs['num_classes'] = head.shape[0]
        return cls(name=config['model'], checkpoint=weights, model_kwargs=kwargs,
                   label=f'{config["model"]} ({run.name})')

    def source(self) -> str:
        if self.pretrained:
            return f'pretrained {self.name}'
        return f'checkpoint {self.checkpoint}' if self.checkpoint is not None else 'random weights'


def _checkpoint_grid(pos_embed_tokens: int) -> Optional[int]:
    """The side of the square patch grid of a position embedding with up to 16 prefix slots first."""
    for prefix in range(0, min(pos_embed_tokens, 17)):
        side = math.isqrt(pos_embed_tokens - prefix)
        if side * side == pos_embed_tokens - prefix and side > 0:
            return side
    return None


def _model_grid(model: nn.Module) -> Optional[Tuple[int, int]]:
    grid = getattr(getattr(model, 'patch_embed', None), 'grid_size', None)
    return tuple(grid) if grid is not None else None


def build_model(spec: ModelSpec) -> Tuple[nn.Module, List[str]]:
    """Create the model of spec in eval mode, and the notes a user must read: the resolution chosen from the
    checkpoint when no img_size was given, or a position embedding that had to be resampled."""
    notes: List[str] = []
    kwargs = dict(spec.model_kwargs)
    pos_tokens = None
    if spec.checkpoint is not None:
        pos = read_state_dict(spec.checkpoint).get('pos_embed')
        pos_tokens = pos.shape[1] if pos is not None else None
    model = create_model(spec.name, model_kwargs=kwargs, checkpoint=None, pretrained=spec.pretrained)
    grid, side = _model_grid(model), _checkpoint_grid(pos_tokens) if pos_tokens else None
    if side is not None and grid is not None and grid != (side, side) and 'img_size' not in kwargs:
        patch = model.patch_embed.patch_size[0]
        kwargs['img_size'] = side * patch
        notes.append(f'created at {side * patch} px, the resolution of the checkpoint\'s position embedding '
                     f'({side}x{side} patches of {patch} px); pass --model-kwargs img_size=N for another')
        model = create_model(spec.name, model_kwargs=kwargs)
        grid = _model_grid(model)
    elif side is not None and grid is not None and grid != (side, side):
        notes.append(f'the checkpoint\'s position embedding ({side}x{side} patches) was resampled to the model\'s '
                     f'{grid[0]}x{grid[1]}: the numbers describe the model at this resolution, not the one it was '
                     f'trained at')
    if spec.checkpoint is not None:
        from ..weights import load_model_weights
        load_model_weights(model, spec.checkpoint)
    return model.eval(), notes


def describe(model: nn.Module) -> Dict[str, Any]:
    """Resolution and token count of a model as the analysis runs it."""
    patch_embed = getattr(model, 'patch_embed', None)
    size = tuple(getattr(patch_embed, 'img_size', ()) or ())
    patches = int(getattr(patch_embed, 'num_patches', 0) or 0)
    return dict(input_size=list(size), num_patches=patches,
                num_prefix_tokens=int(getattr(model, 'num_prefix_tokens', 0) or 0))
