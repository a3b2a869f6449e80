"""Segmentation run configurations: dataclasses checked on load by the engine's `from_dict` / `load_config`
(an unknown key is a ConfigError listing the valid ones). Defaults are Segmenter's ADE20K recipe
(Strudel et al. 2021, Sec. 4.1; editvit/configs/segmenter_ade20k.yaml)."""
from dataclasses import dataclass
from typing import Any, Dict, Literal, Optional

from ..errors import ConfigError
from ..train.config import Amp, Device, check_ranges, field_help

SegDataset = Literal['ade20k', 'maskfolder', 'synthetic', 'pasted']
ObjectDataset = Literal['fashion-mnist', 'cifar10', 'cifar100', 'imagefolder']
Decoder = Literal['mask_transformer', 'linear']


@dataclass
class SegTrainConfig:
    """A segmentation training run. Field names are the YAML keys; on the command line they are --dashed-names."""
    # model
    model: Optional[str] = field_help('backbone: timm model name, e.g. edit_small_patch16_224 or '
                                      'deit3_small_patch16_224', default=None)
    model_kwargs: Dict[str, Any] = field_help('extra timm.create_model arguments of the backbone', default_factory=dict)
    decoder: Decoder = field_help("'mask_transformer' (Segmenter's Mask Transformer) or 'linear'",
                             default='mask_transformer')
    decoder_depth: int = field_help('Mask Transformer layers', at_least=1, default=2)
    decoder_dropout: float = field_help('Mask Transformer dropout', at_least=0, below=1, default=0.1)
    drop_path: float = field_help('backbone stochastic depth', at_least=0, below=1, default=0.1)
    pretrained: Optional[str] = field_help('backbone weights: an editvit classification checkpoint or a timm DeiT3 '
                                      'checkpoint (head dropped, position embedding resampled)', default=None)
    num_classes: Optional[int] = field_help('classes (default: those of the dataset; the synthetic set: 3)',
                                       at_least=1, default=None)
    # data
    dataset: Optional[SegDataset] = field_help('data set', default=None)
    data_dir: Optional[str] = field_help('data folder (default: $EDITVIT_DATA/<dataset>)', default=None)
    synthetic_samples: int = field_help('training images of the synthetic and pasted sets', at_least=1, default=256)
    synthetic_image_size: int = field_help('image size of the synthetic and pasted sets', at_least=1, default=32)
    objects_dataset: ObjectDataset = field_help("classification images the 'pasted' set pastes (data_dir is their "
                                           "folder)", default='fashion-mnist')
    num_workers: int = field_help('data loader worker processes per rank', at_least=0, default=2)
    # augmentation (mmseg's ADE20K pipeline)
    crop_size: int = field_help('training crop = backbone input = sliding window', at_least=1, default=512)
    scale_long: int = field_help('long side of the base scale', at_least=1, default=2048)
    scale_short: int = field_help('short side of the base scale', at_least=1, default=512)
    ratio_min: float = field_help('smallest random rescale ratio', above=0, default=0.5)
    ratio_max: float = field_help('largest random rescale ratio', above=0, default=2.0)
    cat_max_ratio: float = field_help('largest share of one class in a crop (1: off)', above=0, at_most=1, default=0.75)
    hflip: float = field_help('horizontal flip probability', at_least=0, at_most=1, default=0.5)
    photometric: bool = field_help('photometric distortion', default=True)
    # optimisation
    epochs: int = field_help('training epochs', at_least=1, default=64)
    batch_size: int = field_help('images per process and step', at_least=1, default=8)
    global_batch_size: Optional[int] = field_help('images per update (gradient accumulation)', at_least=1, default=None)
    optimizer: str = field_help("timm optimizer name (Segmenter: timm's 'sgd', i.e. Nesterov momentum)", default='sgd')
    momentum: float = field_help('SGD momentum', at_least=0, below=1, default=0.9)
    lr: float = field_help('learning rate', above=0, default=1e-3)
    min_lr: float = field_help('final learning rate of the poly decay', at_least=0, default=1e-5)
    poly_power: float = field_help('power of the poly decay', at_least=0, default=0.9)
    weight_decay: float = field_help('weight decay', at_least=0, default=0.0)
    clip_grad: Optional[float] = field_help('gradient norm clipping (null: none)', above=0, default=None)
    # evaluation
    eval_stride: Optional[int] = field_help('sliding-window stride (default: the crop size)', at_least=1, default=None)
    eval_every: int = field_help('evaluate every N epochs (and after the last)', at_least=1, default=1)
    eval_batch_size: int = field_help('validation images per step (1 for images of different sizes)',
                                      at_least=1, default=1)
    # run
    output: Optional[str] = field_help('run folder', default=None)
    seed: int = field_help('random seed', default=0, at_least=0, at_most=2**32 - 1)
    device: Optional[Device] = field_help('cpu or cuda (default: cuda if available)', default=None)
    amp: Amp = field_help('autocast precision: bf16, fp16 (GPU) or none', default='none')
    compile: bool = field_help('torch.compile the model', default=False)
    resume: bool = field_help('continue the run in output from its last checkpoint (with a larger epochs: extend a '
                              'finished run)', default=False)
    overwrite: bool = field_help('replace the results of an earlier run in output (they are kept otherwise)',
                                 default=False)
    checkpoint_every: int = field_help('also checkpoint every N updates within an epoch (0: at epoch ends only)',
                                  at_least=0, default=500)
    tensorboard: bool = field_help('write TensorBoard scalars to output/tensorboard', default=False)
    progress: bool = field_help('show a progress bar', default=True)
    threads: Optional[int] = field_help('torch CPU threads per process (default: OMP_NUM_THREADS if set, else the '
                                        'idle cores, split between the processes of a machine)', at_least=1,
                                        default=None)

    def validate(self) -> 'SegTrainConfig':
        for name in ('model', 'dataset', 'output'):
            if getattr(self, name) is None:
                raise ConfigError(f'{name!r} is required: give --{name.replace("_", "-")} or set it in the config')
        _check_common(self)
        if not self.ratio_min <= self.ratio_max:
            raise ConfigError(f'need ratio_min <= ratio_max, got {self.ratio_min}, {self.ratio_max}')
        return self


@dataclass
class SegEvalConfig:
    """A segmentation evaluation: mIoU, pixel accuracy and per-class IoU of saved Segmenter weights."""
    model: Optional[str] = field_help('backbone timm model name', default=None)
    model_kwargs: Dict[str, Any] = field_help('extra timm.create_model arguments of the backbone', default_factory=dict)
    decoder: Decoder = field_help("'mask_transformer' or 'linear'", default='mask_transformer')
    decoder_depth: int = field_help('Mask Transformer layers', at_least=1, default=2)
    checkpoint: Optional[str] = field_help('Segmenter weights (model.safetensors or a checkpoint of segment train)',
                                      default=None)
    num_classes: Optional[int] = field_help('classes (default: those of the dataset)', at_least=1, default=None)
    dataset: Optional[SegDataset] = field_help('data set', default=None)
    data_dir: Optional[str] = field_help('data folder (default: $EDITVIT_DATA/<dataset>)', default=None)
    split: Literal['train', 'val'] = field_help('split to evaluate', default='val')
    synthetic_samples: int = field_help('training images of the synthetic and pasted sets', at_least=1, default=256)
    synthetic_image_size: int = field_help('image size of the synthetic and pasted sets', at_least=1, default=32)
    objects_dataset: ObjectDataset = field_help("classification images the 'pasted' set pastes (data_dir is their "
                                           "folder)", default='fashion-mnist')
    crop_size: int = field_help('backbone input = sliding window', at_least=1, default=512)
    scale_long: int = field_help('long side of the test scale', at_least=1, default=2048)
    scale_short: int = field_help('short side of the test scale', at_least=1, default=512)
    eval_stride: Optional[int] = field_help('sliding-window stride (default: the crop size)', at_least=1, default=None)
    multi_scale: bool = field_help('multi-scale test: ratios 0.5 to 1.75 with flips, probabilities averaged',
                              default=False)
    flip: bool = field_help('add flipped views (implied by multi_scale)', default=False)
    batch_size: int = field_help('images per step (1 for images of different sizes)', at_least=1, default=1)
    num_workers: int = field_help('data loader worker processes', at_least=0, default=2)
    device: Optional[Device] = field_help('cpu or cuda (default: cuda if available)', default=None)
    amp: Amp = field_help('autocast precision', default='none')
    seed: int = field_help('seed of the synthetic set', default=0, at_least=0, at_most=2**32 - 1)
    output: Optional[str] = field_help('write metrics.json, per_class_iou.md and pictures to this folder', default=None)
    pictures: int = field_help('save this many prediction pictures to output/pictures', at_least=0, default=0)
    threads: Optional[int] = field_help('torch CPU threads (default: OMP_NUM_THREADS if set, else the idle cores)',
                                        at_least=1, default=None)
    run: Optional[str] = field_help("a segment train run folder: its config.yaml gives every value not set otherwise "
                                    "(backbone, decoder, dataset, crop and test scale, stride, ...) and its "
                                    "model.safetensors the weights", default=None)

    # a training run's keys -> this config's (None: not taken): the run evaluated with its own validation batch
    RUN_KEYS = {'eval_batch_size': 'batch_size', 'batch_size': None}

    def validate(self) -> 'SegEvalConfig':
        for name in ('model', 'checkpoint', 'dataset'):
            if getattr(self, name) is None:
                raise ConfigError(f'{name!r} is required: give --{name.replace("_", "-")} (or --run DIR)')
        _check_common(self)
        if self.pictures and not self.output:
            raise ConfigError("'pictures' needs --output DIR to write them to")
        return self


def _check_common(cfg: Any) -> None:
    check_ranges(cfg)
    if cfg.eval_stride is not None and not 0 < cfg.eval_stride <= cfg.crop_size:
        raise ConfigError(f"'eval_stride' must be in 1..crop_size ({cfg.crop_size}), got {cfg.eval_stride}")
    if cfg.amp == 'fp16' and cfg.device == 'cpu':
        raise ConfigError("amp 'fp16' needs a GPU; use 'bf16' on CPU")
