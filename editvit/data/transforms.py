"""Train and eval transforms of the DeiT3 recipe (paper Table 2), built with timm's `create_transform`."""
from typing import Optional, Sequence, Tuple

from timm.data import create_transform
from torchvision import transforms

CROPS = ('rrc', 'src')


def create_train_transform(
        img_size: Tuple[int, int],
        mean: Sequence[float],
        std: Sequence[float],
        crop: str = 'rrc',
        hflip: float = 0.5,
        three_augment: bool = True,
        color_jitter: Optional[float] = 0.3,
        interpolation: str = 'bicubic',
) -> transforms.Compose:
    """PIL image -> normalised tensor (3, H, W) with the recipe's augmentation.

    Args:
        img_size: (H, W) of the model input.
        mean: Normalisation mean.
        std: Normalisation standard deviation.
        crop: 'rrc' random resized crop, or 'src' DeiT3's simple random crop (resize, then a random crop with 4
            pixels of reflect padding), which DeiT3 uses where Table 2 has no RRC.
        hflip: Horizontal flip probability.
        three_augment: DeiT3's 3-Augment (one of grey scale, solarisation, Gaussian blur per image).
        color_jitter: Colour jitter strength (None or 0: none).
        interpolation: Resize interpolation.
    """
    if crop not in CROPS:
        raise ValueError(f'crop must be one of {CROPS}, got {crop!r}')
    primary, secondary, final = create_transform(
        img_size, is_training=True, hflip=hflip, auto_augment='3a' if three_augment else None,
        color_jitter=color_jitter or None, interpolation=interpolation, mean=mean, std=std, separate=True)
    if crop == 'src':
        steps = [transforms.Resize(min(img_size), interpolation=transforms.InterpolationMode(interpolation)),
                 transforms.RandomCrop(img_size, padding=4, padding_mode='reflect')]
        if hflip > 0:
            steps.append(transforms.RandomHorizontalFlip(hflip))
        primary = transforms.Compose(steps)
    return transforms.Compose([*primary.transforms, *secondary.transforms, *final.transforms])


def create_eval_transform(
        img_size: Tuple[int, int],
        mean: Sequence[float],
        std: Sequence[float],
        crop_ratio: float = 1.0,
        interpolation: str = 'bicubic',
) -> transforms.Compose:
    """PIL image -> normalised tensor: resize to img_size / crop_ratio, centre crop (Table 2: eval crop ratio 1.0)."""
    return create_transform(img_size, is_training=False, crop_pct=crop_ratio, interpolation=interpolation,
                            mean=mean, std=std)
