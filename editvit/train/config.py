"""Run configurations as checked data: dataclasses read from YAML and command-line values.

A YAML file holds any subset of a config's fields; values given on the command line override it. An unknown key,
a value of the wrong type or a choice outside its set is a ConfigError that names the key.
"""
import dataclasses
import math
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Iterable, List, Literal, Mapping, Optional, Type, TypeVar, Union

import yaml

from ..errors import ConfigError

Amp = Literal['bf16', 'fp16', 'none']
Device = Literal['cpu', 'cuda']
Dataset = Literal['imagefolder', 'cifar10', 'cifar100', 'fashion-mnist', 'synthetic']
C = TypeVar('C')


def field_help(text: str, *, at_least: Optional[float] = None, above: Optional[float] = None,
               at_most: Optional[float] = None, below: Optional[float] = None, **kwargs) -> Any:
    """A config field with its help text and, for numbers, its valid range (checked by `from_dict`)."""
    bounds = {k: v for k, v in dict(at_least=at_least, above=above, at_most=at_most, below=below).items()
              if v is not None}
    return field(metadata={'help': text, 'range': bounds}, **kwargs)


_BOUNDS = {'at_least': (lambda v, b: v >= b, '>= {}'), 'above': (lambda v, b: v > b, '> {}'),
           'at_most': (lambda v, b: v <= b, '<= {}'), 'below': (lambda v, b: v < b, '< {}')}


def check_range(key: str, value: Any, bounds: Mapping[str, float]) -> None:
    """ConfigError naming the option and its valid range when a number lies outside it (NaN included)."""
    if value is None or not bounds or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if all(_BOUNDS[name][0](value, bound) for name, bound in bounds.items()) and not math.isinf(value):
        return
    valid = ' and '.join(_BOUNDS[name][1].format(bound) for name, bound in bounds.items())
    finite = 'a finite number ' if math.isinf(value) else ''
    raise ConfigError(f"{key!r} (--{key.replace('_', '-')}) must be {finite}{valid}, got {value}")


@dataclass
class TrainConfig:
    """Everything that defines a training run (paper Sec. 4.3, Table 2). Field names are the YAML keys; on the
    command line they are --dashed-names."""
    # model
    model: Optional[str] = field_help('timm model name, e.g. edit_small_patch16_224 or deit3_small_patch16_224',
                                 default=None)
    model_kwargs: Dict[str, Any] = field_help('extra timm.create_model arguments, e.g. img_size=32 patch_size=4',
                                         default_factory=dict)
    num_classes: Optional[int] = field_help('classes of the head (default: the number of classes of the dataset)',
                                       at_least=1, default=None)
    drop_path: Optional[float] = field_help('stochastic depth rate (Table 2: 0.05 pre-training, 0.1 transfer; '
                                       'default: the model\'s own)', at_least=0, below=1, default=None)
    layer_scale_init: Optional[float] = field_help('LayerScale initial value passed as init_values; 0: no LayerScale '
                                                   '(DeiT3: 1e-6; default: the model\'s own)', at_least=0, default=None)
    grad_checkpointing: bool = field_help('recompute activations in the backward pass (less memory, ~30%% slower)',
                                     default=False)
    finetune: Optional[str] = field_help('start from these weights (EDIT or DeiT3, timm or editvit format): the head '
                                         'is reset to num_classes, the position embedding resampled', default=None)
    # data
    dataset: Optional[Dataset] = field_help('data set', default=None)
    data_dir: Optional[str] = field_help('data folder (default: $EDITVIT_DATA/<dataset>)', default=None)
    val_split_per_class: int = field_help('hold out K training images per class as validation split, for class folders '
                                     'without val/ (the paper did so for ImageNet-21k)', at_least=0, default=0)
    skip_bad_images: bool = field_help('skip and count undecodable images instead of stopping', default=False)
    synthetic_samples: int = field_help('training images of the synthetic set', at_least=1, default=256)
    num_workers: int = field_help('data loader worker processes per rank', at_least=0, default=2)
    # augmentation (Table 2)
    crop: Literal['rrc', 'src', 'none'] = field_help("'rrc' random resized crop, 'src' DeiT3's simple random crop "
                                                     "or 'none' (the centre, as evaluated)",
                                        default='rrc')
    hflip: float = field_help('horizontal flip probability', at_least=0, at_most=1, default=0.5)
    data_path: Literal['auto', 'tensor', 'pil'] = field_help(
        "'tensor': images decoded once into memory and augmented a batch at a time; 'pil': per image in loader "
        "workers; 'auto': 'tensor' for images up to 64 px", default='auto')
    three_augment: bool = field_help('DeiT3 3-Augment: grey scale, solarisation or Gaussian blur', default=True)
    color_jitter: Optional[float] = field_help('colour jitter strength (0: off)', at_least=0, default=0.3)
    mixup: float = field_help('Mixup alpha (0: off)', at_least=0, default=0.8)
    cutmix: float = field_help('CutMix alpha (0: off)', at_least=0, default=1.0)
    smoothing: float = field_help('label smoothing epsilon', at_least=0, below=1, default=0.0)
    repeated_aug: bool = field_help('repeated augmentation (3 repeats)', default=False)
    eval_crop_ratio: float = field_help('eval centre-crop ratio', above=0, at_most=1, default=1.0)
    # optimisation
    epochs: int = field_help('training epochs', at_least=1, default=10)
    batch_size: int = field_help('images per process and step', at_least=1, default=64)
    global_batch_size: Optional[int] = field_help('images per optimiser update over all processes; reached by gradient '
                                             'accumulation (default: batch_size x processes)', at_least=1, default=None)
    lr: float = field_help('learning rate at lr_base_batch images per update', above=0, default=3e-3)
    lr_base_batch: Optional[int] = field_help('the global batch that lr is given for; the used lr is scaled to the '
                                         'actual global batch by lr_scale (default: no scaling)', at_least=1,
                                         default=None)
    lr_scale: Literal['linear', 'sqrt'] = field_help('lr scaling rule with the global batch', default='linear')
    min_lr: float = field_help('final learning rate of the cosine decay', at_least=0, default=1e-6)
    warmup_epochs: float = field_help('linear warm-up epochs', at_least=0, default=5.0)
    warmup_lr: float = field_help('learning rate at the start of the warm-up', at_least=0, default=1e-6)
    optimizer: str = field_help('timm optimizer name', default='lamb')
    weight_decay: float = field_help('weight decay', at_least=0, default=0.02)
    clip_grad: Optional[float] = field_help('gradient norm clipping (null: none)', above=0, default=1.0)
    loss: Literal['ce', 'bce'] = field_help("'ce' cross-entropy or 'bce' binary cross-entropy", default='ce')
    ema: bool = field_help('keep an exponential moving average of the weights', default=False)
    ema_decay: float = field_help('EMA decay per update', at_least=0, at_most=1, default=0.99996)
    # run
    output: Optional[str] = field_help('run folder', default=None)
    seed: int = field_help('random seed', default=0, at_least=0, at_most=2**32 - 1)
    device: Optional[Device] = field_help('cpu or cuda (default: cuda if available)', default=None)
    amp: Amp = field_help('autocast precision: bf16 (CPU and GPU), fp16 (GPU, with a grad scaler) or none',
                     default='none')
    compile: bool = field_help('torch.compile the model', default=False)
    resume: bool = field_help('continue the run in output from its last checkpoint (with a larger epochs: extend a '
                              'finished run)', default=False)
    overwrite: bool = field_help('replace the results of an earlier run in output (they are kept otherwise)',
                                 default=False)
    checkpoint_every: int = field_help('also checkpoint every N updates within an epoch (0: at epoch ends only)',
                                  at_least=0, default=200)
    threads: Optional[int] = field_help('torch CPU threads per process (default: OMP_NUM_THREADS if set, else the '
                                        'idle cores, split between the processes of a machine)', at_least=1,
                                        default=None)
    tensorboard: bool = field_help('write TensorBoard scalars to output/tensorboard', default=False)
    progress: bool = field_help('show a progress bar', default=True)

    def validate(self) -> 'TrainConfig':
        for name in ('model', 'dataset', 'output'):
            if getattr(self, name) is None:
                raise ConfigError(f'{name!r} is required: give --{name.replace("_", "-")} or set it in the config')
        check_ranges(self)
        if (self.mixup > 0 or self.cutmix > 0) and self.batch_size % 2:
            raise ConfigError(f"Mixup/CutMix mix pairs of images: 'batch_size' must be even, got {self.batch_size}")
        if self.amp == 'fp16' and self.device == 'cpu':
            raise ConfigError("amp 'fp16' needs a GPU (its grad scaler is CUDA-only); use 'bf16' on CPU")
        return self


@dataclass
class EvalConfig:
    """An evaluation of weights on a data set's validation split."""
    model: Optional[str] = field_help('timm model name', default=None)
    checkpoint: Optional[str] = field_help('weights file (.safetensors, timm .pth or an editvit checkpoint)',
                                           default=None)
    model_kwargs: Dict[str, Any] = field_help('extra timm.create_model arguments', default_factory=dict)
    layer_scale_init: Optional[float] = field_help('LayerScale initial value the model was trained with (0: none); '
                                                   'it decides whether the model has LayerScale gains to load',
                                                   at_least=0, default=None)
    num_classes: Optional[int] = field_help('classes of the head (default: those of the dataset)', at_least=1,
                                            default=None)
    dataset: Optional[Dataset] = field_help('data set', default=None)
    data_dir: Optional[str] = field_help('data folder (default: $EDITVIT_DATA/<dataset>)', default=None)
    split: Literal['train', 'val'] = field_help('split to evaluate', default='val')
    val_split_per_class: int = field_help('evaluate on K held-out training images per class (class folders only)',
                                          at_least=0, default=0)
    skip_bad_images: bool = field_help('skip and count undecodable images', default=False)
    synthetic_samples: int = field_help('training images of the synthetic set', at_least=1, default=256)
    eval_crop_ratio: float = field_help('centre-crop ratio', above=0, at_most=1, default=1.0)
    batch_size: int = field_help('images per step', at_least=1, default=128)
    num_workers: int = field_help('data loader worker processes', at_least=0, default=2)
    device: Optional[Device] = field_help('cpu or cuda (default: cuda if available)', default=None)
    amp: Amp = field_help('autocast precision', default='none')
    seed: int = field_help('seed of the synthetic set and of carved validation splits', default=0, at_least=0,
                           at_most=2**32 - 1)
    output: Optional[str] = field_help('also write the metrics to this JSON file', default=None)
    threads: Optional[int] = field_help('torch CPU threads (default: OMP_NUM_THREADS if set, else the idle cores)',
                                        at_least=1, default=None)
    run: Optional[str] = field_help("a training run folder: its config.yaml gives every value not set otherwise "
                                    "(model, model_kwargs, dataset, data_dir, eval crop, seed, ...) and its "
                                    "model.safetensors the weights", default=None)

    def validate(self) -> 'EvalConfig':
        for name in ('model', 'checkpoint', 'dataset'):
            if getattr(self, name) is None:
                raise ConfigError(f'{name!r} is required: give --{name.replace("_", "-")} (or --run DIR)')
        check_ranges(self)
        if self.amp == 'fp16' and self.device == 'cpu':
            raise ConfigError("amp 'fp16' needs a GPU; use 'bf16' on CPU")
        return self


def field_types(cls: Type) -> Dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Check value against the annotation tp, converting where YAML or the shell is loose (int for float, '3e-3')."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Union:
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(key, value, inner[0])
    if origin is Literal:
        if value not in args:
            raise ConfigError(f'{key!r} must be one of {", ".join(map(str, args))}, got {value!r}')
        return value
    if origin in (dict, Dict) or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f'{key!r} must be a mapping of names to values, got {value!r}')
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f'{key!r} must be true or false, got {value!r}')
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f'{key!r} must be an integer, got {value!r}')
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 3e-3 (no dot) as a string
            try:
                number = float(value)
                if math.isfinite(number):
                    return number
            except ValueError:
                pass
        raise ConfigError(f'{key!r} must be a number, got {value!r}')
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f'{key!r} must be a string, got {value!r}')
    raise TypeError(f'no coercion for {tp}')


def check_ranges(config: Any) -> None:
    """Check every number of a config dataclass against its field's range (for configs built in code)."""
    for f in fields(config):
        check_range(f.name, getattr(config, f.name), f.metadata.get('range', {}))


def from_dict(cls: Type[C], data: Mapping[str, Any], source: str = 'config') -> C:
    """Build a config dataclass from a mapping, checking every key and value."""
    types = field_types(cls)
    valid = {f.name: f for f in fields(cls)}
    for key in data:
        if key not in valid:
            raise ConfigError(f'unknown key {key!r} in {source}; valid keys: {", ".join(valid)}')
    values = {k: _coerce(k, v, types[k]) for k, v in data.items()}
    for key, value in values.items():
        if isinstance(value, str) and not value.strip():  # '' as a path would mean the current folder
            raise ConfigError(f"{key!r} (--{key.replace('_', '-')}) is empty; give a value or leave it out")
        check_range(key, value, valid[key].metadata.get('range', {}))
    return cls(**values)


def read_yaml(path: Union[str, Path]) -> Dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f'config file {str(path)!r} is a folder; give the YAML file inside it')
    if not path.is_file():
        raise ConfigError(f'config file {str(path)!r} does not exist')
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f'{str(path)!r} is not valid YAML: {e}') from e
    except UnicodeDecodeError as e:
        raise ConfigError(f'{str(path)!r} is not a text file (byte {e.start} is not UTF-8); give a YAML file') from e
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f'{str(path)!r} must hold a mapping of keys to values, not a {type(data).__name__}')
    return dict(data)


# training-run keys an evaluation does not take from the run (where the run wrote, how it was shown)
_NOT_FROM_RUN = frozenset({'output', 'run', 'resume', 'overwrite', 'progress', 'tensorboard', 'checkpoint_every'})


def check_run_kind(saved: Mapping[str, Any], cls: Type, run: Union[str, Path]) -> None:
    """ConfigError when the run folder of one task is given to the other's command: a segmentation run (its config
    has a decoder) to a classification config or the reverse."""
    segmentation_run, segmentation_cls = 'decoder' in saved, 'decoder' in {f.name for f in fields(cls)}
    if segmentation_run and not segmentation_cls:
        raise ConfigError(f'{str(run)!r} holds a segmentation run (editvit segment train): give it to '
                          f'`editvit segment eval --run` or `editvit segment train --resume`')
    if segmentation_cls and not segmentation_run:
        raise ConfigError(f'{str(run)!r} holds a classification run (editvit train): give it to `editvit eval --run` '
                          f'or `editvit train --resume`; to segment with its weights, pass its model.safetensors as '
                          f'--pretrained of `editvit segment train`')


def values_from_run(run: Union[str, Path], cls: Type) -> Dict[str, Any]:
    """The values an evaluation config `cls` takes from a training run folder: every field the run's config.yaml
    shares with cls (renamed by cls.RUN_KEYS, a training key -> evaluation key or None to drop it), and the run's
    final weights as checkpoint."""
    run = Path(run)
    if not (run / 'config.yaml').is_file():
        raise ConfigError(f'{str(run)!r} is not a training run folder: it has no config.yaml')
    weights = run / 'model.safetensors'
    if not weights.is_file():
        raise ConfigError(f'the run in {str(run)!r} has no model.safetensors: it has not finished; resume it, or '
                          f'evaluate its last checkpoint with --checkpoint {run / "checkpoint-last.pth"}')
    saved = read_yaml(run / 'config.yaml')
    check_run_kind(saved, cls, run)
    renames = getattr(cls, 'RUN_KEYS', {})
    names = {f.name for f in fields(cls)}
    values = {}
    for key, value in saved.items():
        key = renames.get(key, key)
        if key is not None and key in names and key not in _NOT_FROM_RUN:
            values[key] = value
    return {**values, 'checkpoint': str(weights)}


def load_config(path: Optional[Union[str, Path]] = None, overrides: Optional[Mapping[str, Any]] = None,
                cls: Type[C] = TrainConfig) -> C:
    """A config from a YAML file (optional) with overrides on top (e.g. command-line values), checked. With a `run`
    value (evaluation configs), the training run's values come first, then the file's, then the overrides."""
    data = read_yaml(path) if path else {}
    from_dict(cls, data, source=str(path))  # report the file's own mistakes against the file
    run = (overrides or {}).get('run') or data.get('run')
    if run:
        data = {**values_from_run(run, cls), **data}
    merged = dict(data)
    for key, value in (overrides or {}).items():  # a mapping given on top (model_kwargs) adds to the file's
        both = isinstance(value, Mapping) and isinstance(data.get(key), Mapping)
        merged[key] = {**data[key], **value} if both else value
    return from_dict(cls, merged, source='command-line options' if overrides else str(path))


def to_dict(config: Any) -> Dict[str, Any]:
    return dataclasses.asdict(config)


# fields that may differ when a run is resumed: where things are and how they are shown, not what is computed
RESUME_FREE_KEYS = frozenset({'output', 'resume', 'overwrite', 'data_dir', 'num_workers', 'progress', 'tensorboard',
                              'device', 'checkpoint_every', 'threads'})


def resume_differences(saved: Mapping[str, Any], current: Mapping[str, Any],
                       free: Iterable[str] = ()) -> List[str]:
    """'key: saved -> current' for every field that changes the run (not RESUME_FREE_KEYS, nor the config's own
    `free` ones). epochs may grow (a run extended); it may not shrink."""
    keys = sorted((set(saved) | set(current)) - RESUME_FREE_KEYS - set(free))
    changed = [k for k in keys if saved.get(k) != current.get(k)]
    if 'epochs' in changed and isinstance(saved.get('epochs'), int) and current.get('epochs', 0) > saved['epochs']:
        changed.remove('epochs')
    return [f'{k}: {saved.get(k)!r} -> {current.get(k)!r}' for k in changed]
