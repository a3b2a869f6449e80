"""The recipe's train augmentation (`create_train_transform`) on a whole uint8 batch at once, each image with its own
random parameters, on whatever device the batch is on. Built from kornia's batched augmentations.

Matches the PIL path step by step: crop ('src': reflect-pad 4 and a random crop; 'none': the centre; 'rrc': random
resized crop, scale (0.08, 1), ratio (3/4, 4/3)), horizontal flip, DeiT3's 3-Augment (per image one of: grey scale,
solarisation at 128, Gaussian blur with sigma uniform in (0.1, 2), as timm's '3a'), colour jitter (brightness,
contrast, saturation), then normalisation. The pixel values differ slightly from the PIL path: float arithmetic instead
of uint8 rounding after each step, kornia's interpolation and blur kernels instead of PIL's, and the order of the three
jitter operations is drawn once per batch (torchvision draws it per image); every other parameter is drawn per image
as there.
"""
from typing import Sequence, Tuple

import kornia.augmentation as K
import torch
import torch.nn as nn

from .augment_options import SRC_PADDING, AugmentOptions

BLUR_SIGMA = (0.1, 2.0)  # timm's GaussianBlurRand at magnitude 10


class BatchAugment(nn.Module):
    """uint8 images (B, C, H, W) -> augmented, normalised float images (B, C, *img_size), drawing every random
    parameter from torch's global RNG (the caller seeds it).

    Args:
        img_size: (H, W) of the model input.
        mean: Normalisation mean.
        std: Normalisation standard deviation.
        options: Crop, flip, 3-Augment, colour jitter and interpolation (that of the random resized crop).
    """

    def __init__(
            self,
            img_size: Tuple[int, int],
            mean: Sequence[float],
            std: Sequence[float],
            options: AugmentOptions = AugmentOptions(),
    ) -> None:
        super().__init__()
        self.img_size = tuple(img_size)
        interpolation, hflip, color_jitter = options.interpolation, options.hflip, options.color_jitter
        resample = interpolation.upper() if interpolation in ('bicubic', 'bilinear', 'nearest') else 'BICUBIC'
        if options.crop == 'rrc':
            self.crop = K.RandomResizedCrop(self.img_size, resample=resample)  # 'slice': never samples outside
        elif options.crop == 'src':
            self.crop = K.RandomCrop(self.img_size, padding=SRC_PADDING, padding_mode='reflect')
        else:  # 'none': the images were resized already (create_train_batches); a non-square size is centre-cropped
            self.crop = K.CenterCrop(self.img_size)
        self.flip = K.RandomHorizontalFlip(p=hflip) if hflip > 0 else None
        # 3-Augment: each op at p=1 on the images that drew it
        self.three = nn.ModuleList([
            K.RandomGrayscale(p=1.0),
            K.RandomSolarize(thresholds=0.0, additions=0.0, p=1.0),  # x >= 0.5 -> 1 - x: PIL's solarize at 128
            K.RandomGaussianBlur(kernel_size=2 * int(3 * BLUR_SIGMA[1] + 0.5) + 1, sigma=BLUR_SIGMA, p=1.0),
        ]) if options.three_augment else None
        self.jitter = K.ColorJitter(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter, p=1.0) \
            if color_jitter else None
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().div_(255)  # (B, C, H, W) in [0, 1]
        x = self.crop(x)  # (B, C, *img_size)
        if self.flip is not None:
            x = self.flip(x)
        if self.three is not None:
            choice = torch.randint(len(self.three), (len(x),))  # (B,) which op each image gets
            x = x.clone()
            for i, op in enumerate(self.three):
                chosen = (choice == i).nonzero().flatten().to(x.device)
                if len(chosen):
                    x[chosen] = op(x[chosen])
        if self.jitter is not None:
            x = self.jitter(x)
        return (x - self.mean.to(x.device)) / self.std.to(x.device)  # (B, C, *img_size)
