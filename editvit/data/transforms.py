"""Train and eval transforms of the DeiT3 recipe (paper Table 2), built with timm's `create_transform`."""
from typing import Sequence, Tuple

from timm.data import create_transform
from torchvision import transforms

from .augment_options import SRC_PADDING, AugmentOptions


def create_train_transform(
        img_size: Tuple[int, int],
        mean: Sequence[float],
        std: Sequence[float],
        options: AugmentOptions = AugmentOptions(),
) -> transforms.Compose:
    """PIL image -> normalised tensor (3, H, W) with the recipe's augmentation.

    Args:
        img_size: (H, W) of the model input.
        mean: Normalisation mean.
        std: Normalisation standard deviation.
        options: Crop, flip, 3-Augment, colour jitter and interpolation.
    """
    primary, secondary, final = create_transform(
        img_size, is_training=True, hflip=options.hflip, auto_augment='3a' if options.three_augment else None,
        color_jitter=options.color_jitter or None, interpolation=options.interpolation, mean=mean, std=std,
        separate=True)
    if options.crop in ('src', 'none'):  # DeiT3's simple random crop, or none, in place of timm's RRC
        resize = transforms.Resize(min(img_size), interpolation=transforms.InterpolationMode(options.interpolation))
        crop = transforms.RandomCrop(img_size, padding=SRC_PADDING, padding_mode='reflect') if options.crop == 'src' \
            else transforms.CenterCrop(img_size)
        steps = [resize, crop]
        if options.hflip > 0:
            steps.append(transforms.RandomHorizontalFlip(options.hflip))
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
