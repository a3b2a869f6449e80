"""The options of the recipe's train augmentation (paper Table 2), one frozen value that both the PIL path
(`create_train_transform`) and the tensor path (`BatchAugment`, `create_train_batches`) apply."""
from dataclasses import dataclass
from typing import Any, Optional

CROPS = ('rrc', 'src', 'none')
SRC_PADDING = 4  # DeiT3's simple random crop pads by 4 pixels (reflect) before its random crop


@dataclass(frozen=True)
class AugmentOptions:
    """What the train augmentation does, before normalisation.

    Args:
        crop: 'rrc' random resized crop, or 'src' DeiT3's simple random crop (resize, then a random crop with 4
            pixels of reflect padding), which DeiT3 uses where Table 2 has no RRC, or 'none' (resize, then the
            centre crop: the image as evaluation sees it, for short schedules on small centred images).
        hflip: Horizontal flip probability.
        three_augment: DeiT3's 3-Augment (one of grey scale, solarisation, Gaussian blur per image).
        color_jitter: Colour jitter strength (None or 0: none).
        interpolation: Resize interpolation ('bicubic', 'bilinear' or 'nearest'; the model's own, from its data
            config).
    """

    crop: str = 'rrc'
    hflip: float = 0.5
    three_augment: bool = True
    color_jitter: Optional[float] = 0.3
    interpolation: str = 'bicubic'

    def __post_init__(self) -> None:
        if self.crop not in CROPS:
            raise ValueError(f'crop must be one of {CROPS}, got {self.crop!r}')

    @classmethod
    def from_config(cls, cfg: Any, interpolation: str) -> 'AugmentOptions':
        """The options a training config sets (its keys crop, hflip, three_augment and color_jitter), with the
        model's resize interpolation."""
        return cls(crop=cfg.crop, hflip=cfg.hflip, three_augment=cfg.three_augment, color_jitter=cfg.color_jitter,
                   interpolation=interpolation)
