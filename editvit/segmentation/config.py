"""Segmentation run configurations: dataclasses checked on load by the engine's `from_dict` / `load_config`
(an unknown key is a ConfigError listing the valid ones). Defaults are Segmenter's ADE20K recipe
(Strudel et al. 2021, Sec. 4.1; configs/segmenter_ade20k.yaml)."""
from dataclasses import dataclass
from typing import Any, Dict, Literal, Optional

from ..train.config import Amp, ConfigError, Device, _help

SegDataset = Literal['ade20k', 'maskfolder', 'synthetic', 'pasted']
ObjectDataset = Literal['fashion-mnist', 'cifar10', 'cifar100', 'imagefolder']
Decoder = Literal['mask_transformer', 'linear']


@dataclass
class SegTrainConfig:
    """A segmentation training run. Field names are the YAML keys; on the command line they are --dashed-names."""
    # model
    model: Optional[str] = _help('backbone: timm model name, e.g. edit_small_patch16_224 or deit3_small_patch16_224',
                                 default=None)
    model_kwargs: Dict[str, Any] = _help('extra timm.create_model arguments of the backbone', default_factory=dict)
    decoder: Decoder = _help("'mask_transformer' (Segmenter's Mask Transformer) or 'linear'",
                             default='mask_transformer')
    decoder_depth: int = _help('Mask Transformer layers', default=2)
    decoder_dropout: float = _help('Mask Transformer dropout', default=0.1)
    drop_path: float = _help('backbone stochastic depth', default=0.1)
    pretrained: Optional[str] = _help('backbone weights: an editvit classification checkpoint or a timm DeiT3 '
                                      'checkpoint (head dropped, position embedding resampled)', default=None)
    num_classes: Optional[int] = _help('classes (default: those of the dataset; the synthetic set: 3)',
                                       default=None)
    # data
    dataset: Optional[SegDataset] = _help('data set', default=None)
    data_dir: Optional[str] = _help('data folder (default: $EDITVIT_DATA/<dataset>)', default=None)
    synthetic_samples: int = _help('training images of the synthetic and pasted sets', default=256)
    synthetic_image_size: int = _help('image size of the synthetic and pasted sets', default=32)
    objects_dataset: ObjectDataset = _help("classification images the 'pasted' set pastes (data_dir is their "
                                           "folder)", default='fashion-mnist')
    num_workers: int = _help('data loader worker processes per rank', default=2)
    # augmentation (mmseg's ADE20K pipeline)
    crop_size: int = _help('training crop = backbone input = sliding window', default=512)
    scale_long: int = _help('long side of the base scale', default=2048)
    scale_short: int = _help('short side of the base scale', default=512)
    ratio_min: float = _help('smallest random rescale ratio', default=0.5)
    ratio_max: float = _help('largest random rescale ratio', default=2.0)
    cat_max_ratio: float = _help('largest share of one class in a crop (1: off)', default=0.75)
    hflip: float = _help('horizontal flip probability', default=0.5)
    photometric: bool = _help('photometric distortion', default=True)
    # optimisation
    epochs: int = _help('training epochs', default=64)
    batch_size: int = _help('images per process and step', default=8)
    global_batch_size: Optional[int] = _help('images per update (gradient accumulation)', default=None)
    optimizer: str = _help("timm optimizer name (Segmenter: timm's 'sgd', i.e. Nesterov momentum)", default='sgd')
    momentum: float = _help('SGD momentum', default=0.9)
    lr: float = _help('learning rate', default=1e-3)
    min_lr: float = _help('final learning rate of the poly decay', default=1e-5)
    poly_power: float = _help('power of the poly decay', default=0.9)
    weight_decay: float = _help('weight decay', default=0.0)
    clip_grad: Optional[float] = _help('gradient norm clipping (null: none)', default=None)
    # evaluation
    eval_stride: Optional[int] = _help('sliding-window stride (default: the crop size)', default=None)
    eval_every: int = _help('evaluate every N epochs (and after the last)', default=1)
    eval_batch_size: int = _help('validation images per step (1 for images of different sizes)', default=1)
    # run
    output: Optional[str] = _help('run folder', default=None)
    seed: int = _help('random seed', default=0)
    device: Optional[Device] = _help('cpu or cuda (default: cuda if available)', default=None)
    amp: Amp = _help('autocast precision: bf16, fp16 (GPU) or none', default='none')
    compile: bool = _help('torch.compile the model', default=False)
    resume: bool = _help('continue the run in output from its last checkpoint', default=False)
    checkpoint_every: int = _help('also checkpoint every N updates within an epoch (0: at epoch ends only)',
                                  default=500)
    tensorboard: bool = _help('write TensorBoard scalars to output/tensorboard', default=False)
    progress: bool = _help('show a progress bar', default=True)

    def validate(self) -> 'SegTrainConfig':
        for name in ('model', 'dataset', 'output'):
            if getattr(self, name) is None:
                raise ConfigError(f'{name!r} is required: give --{name.replace("_", "-")} or set it in the config')
        _check_common(self)
        for name in ('epochs', 'batch_size', 'lr', 'eval_every'):
            if not getattr(self, name) > 0:
                raise ConfigError(f'{name!r} must be positive, got {getattr(self, name)}')
        if not 0 < self.ratio_min <= self.ratio_max:
            raise ConfigError(f'need 0 < ratio_min <= ratio_max, got {self.ratio_min}, {self.ratio_max}')
        if self.global_batch_size is not None and self.global_batch_size <= 0:
            raise ConfigError(f"'global_batch_size' must be positive, got {self.global_batch_size}")
        return self


@dataclass
class SegEvalConfig:
    """A segmentation evaluation: mIoU, pixel accuracy and per-class IoU of saved Segmenter weights."""
    model: Optional[str] = _help('backbone timm model name', default=None)
    model_kwargs: Dict[str, Any] = _help('extra timm.create_model arguments of the backbone', default_factory=dict)
    decoder: Decoder = _help("'mask_transformer' or 'linear'", default='mask_transformer')
    decoder_depth: int = _help('Mask Transformer layers', default=2)
    checkpoint: Optional[str] = _help('Segmenter weights (model.safetensors or a checkpoint of segment train)',
                                      default=None)
    num_classes: Optional[int] = _help('classes (default: those of the dataset)', default=None)
    dataset: Optional[SegDataset] = _help('data set', default=None)
    data_dir: Optional[str] = _help('data folder (default: $EDITVIT_DATA/<dataset>)', default=None)
    split: Literal['train', 'val'] = _help('split to evaluate', default='val')
    synthetic_samples: int = _help('training images of the synthetic and pasted sets', default=256)
    synthetic_image_size: int = _help('image size of the synthetic and pasted sets', default=32)
    objects_dataset: ObjectDataset = _help("classification images the 'pasted' set pastes (data_dir is their "
                                           "folder)", default='fashion-mnist')
    crop_size: int = _help('backbone input = sliding window', default=512)
    scale_long: int = _help('long side of the test scale', default=2048)
    scale_short: int = _help('short side of the test scale', default=512)
    eval_stride: Optional[int] = _help('sliding-window stride (default: the crop size)', default=None)
    multi_scale: bool = _help('multi-scale test: ratios 0.5 to 1.75 with flips, probabilities averaged',
                              default=False)
    flip: bool = _help('add flipped views (implied by multi_scale)', default=False)
    batch_size: int = _help('images per step (1 for images of different sizes)', default=1)
    num_workers: int = _help('data loader worker processes', default=2)
    device: Optional[Device] = _help('cpu or cuda (default: cuda if available)', default=None)
    amp: Amp = _help('autocast precision', default='none')
    seed: int = _help('seed of the synthetic set', default=0)
    output: Optional[str] = _help('write metrics.json, per_class_iou.md and pictures to this folder', default=None)
    pictures: int = _help('save this many prediction pictures to output/pictures', default=0)

    def validate(self) -> 'SegEvalConfig':
        for name in ('model', 'checkpoint', 'dataset'):
            if getattr(self, name) is None:
                raise ConfigError(f'{name!r} is required: give --{name.replace("_", "-")}')
        _check_common(self)
        if self.pictures and not self.output:
            raise ConfigError("'pictures' needs --output DIR to write them to")
        return self


def _check_common(cfg: Any) -> None:
    if cfg.crop_size <= 0:
        raise ConfigError(f"'crop_size' must be positive, got {cfg.crop_size}")
    if cfg.eval_stride is not None and not 0 < cfg.eval_stride <= cfg.crop_size:
        raise ConfigError(f"'eval_stride' must be in 1..crop_size ({cfg.crop_size}), got {cfg.eval_stride}")
    if cfg.amp == 'fp16' and cfg.device == 'cpu':
        raise ConfigError("amp 'fp16' needs a GPU; use 'bf16' on CPU")
