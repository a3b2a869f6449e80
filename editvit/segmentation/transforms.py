"""Joint image/label transforms of Segmenter's ADE20K recipe (mmseg's pipeline, segm/data/config/ade20k.py):

    train: random rescale (ratio 0.5-2.0 of the (2048, 512) scale), random 512 crop in which no class covers more
           than 75% (10 tries), horizontal flip, photometric distortion, normalisation, padding to the crop
           (label 255 in the padding)
    eval:  rescale to fit the (2048, 512) scale; the labels stay at their original size

Random draws use python's `random`, which the loader seeds per image (`editvit.data.TransformedDataset`), so a
resumed run augments every image as an uninterrupted run would.
"""
import random
from typing import Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .metrics import IGNORE_INDEX

Sample = Tuple[Image.Image, np.ndarray]


def fit_scale(size: Tuple[int, int], long_side: float, short_side: float) -> Tuple[int, int]:
    """(H, W) rescaled, aspect kept, to fit within long_side x short_side (mmseg's keep_ratio Resize)."""
    h, w = size
    factor = min(long_side / max(h, w), short_side / min(h, w))
    return max(1, int(h * factor + 0.5)), max(1, int(w * factor + 0.5))


def rescale(image: Image.Image, mask: np.ndarray, size: Tuple[int, int]) -> Sample:
    """Image bilinear, labels nearest, to (H, W)."""
    H, W = size
    image = image.resize((W, H), Image.BILINEAR)
    mask = np.array(Image.fromarray(mask).resize((W, H), Image.NEAREST))
    return image, mask


def random_crop(image: Image.Image, mask: np.ndarray, crop: int, cat_max_ratio: float = 0.75,
                ignore_index: int = IGNORE_INDEX, tries: int = 10) -> Sample:
    """A crop of at most crop x crop; up to `tries` draws until no class covers more than cat_max_ratio of its
    labelled pixels (mmseg's RandomCrop), else the last draw."""
    H, W = mask.shape
    for _ in range(tries):
        top, left = random.randint(0, max(H - crop, 0)), random.randint(0, max(W - crop, 0))
        labels = mask[top:top + crop, left:left + crop]
        _, counts = np.unique(labels[labels != ignore_index], return_counts=True)
        if cat_max_ratio >= 1 or (len(counts) > 1 and counts.max() / counts.sum() < cat_max_ratio):
            break
    box = (left, top, min(left + crop, W), min(top + crop, H))
    return image.crop(box), labels.copy()


def _convert(x: np.ndarray, alpha: float = 1., beta: float = 0.) -> np.ndarray:
    return np.clip(x.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)


def photometric_distortion(image: Image.Image, brightness: float = 32, contrast: Tuple[float, float] = (0.5, 1.5),
                           saturation: Tuple[float, float] = (0.5, 1.5), hue: int = 18) -> Image.Image:
    """mmseg's PhotoMetricDistortion: each of brightness, contrast, saturation and hue changed with probability 1/2,
    contrast before or after the HSV changes. hue is in OpenCV's 0..180 units, as in mmseg."""
    x = np.asarray(image)
    if random.randint(0, 1):
        x = _convert(x, beta=random.uniform(-brightness, brightness))
    contrast_first = random.randint(0, 1)
    if contrast_first and random.randint(0, 1):
        x = _convert(x, alpha=random.uniform(*contrast))
    hsv = np.array(Image.fromarray(x).convert('HSV'))  # (H, W, 3), PIL's hue in 0..255
    if random.randint(0, 1):
        hsv[..., 1] = _convert(hsv[..., 1], alpha=random.uniform(*saturation))
    if random.randint(0, 1):
        shift = random.randint(-hue, hue) * 256 / 180
        hsv[..., 0] = ((hsv[..., 0].astype(np.float32) + shift) % 256).astype(np.uint8)
    x = np.array(Image.fromarray(hsv, 'HSV').convert('RGB'))
    if not contrast_first and random.randint(0, 1):
        x = _convert(x, alpha=random.uniform(*contrast))
    return Image.fromarray(x)


def to_tensors(image: Image.Image, mask: np.ndarray, mean: Sequence[float],
               std: Sequence[float]) -> Tuple[torch.Tensor, torch.Tensor]:
    """(normalised image (3, H, W) float, labels (H, W) long)."""
    x = torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1) / 255.  # (3, H, W)
    x = (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    return x, torch.from_numpy(mask.astype(np.int64))  # (3, H, W), (H, W)


class SegmentationTrainTransform:
    """(PIL image, labels) -> (image (3, crop, crop), labels (crop, crop)) with Segmenter's augmentation.

    Args:
        crop: Crop size (Segmenter on ADE20K: 512).
        mean: Normalisation mean (the backbone's).
        std: Normalisation std.
        scale: (long, short) side of the base scale (ADE20K: (2048, 512)).
        ratio_range: Range of the random rescale ratio (Segmenter: 0.5-2.0).
        cat_max_ratio: Largest share of one class in a crop (0.75), 1 to turn off.
        hflip: Horizontal flip probability.
        photometric: Apply the photometric distortion.
    """

    def __init__(self, crop: int, mean: Sequence[float], std: Sequence[float], scale: Tuple[int, int] = (2048, 512),
                 ratio_range: Tuple[float, float] = (0.5, 2.0), cat_max_ratio: float = 0.75, hflip: float = 0.5,
                 photometric: bool = True) -> None:
        self.crop, self.mean, self.std, self.scale = crop, tuple(mean), tuple(std), scale
        self.ratio_range, self.cat_max_ratio, self.hflip, self.photometric = ratio_range, cat_max_ratio, hflip, \
            photometric

    def __call__(self, sample: Sample) -> Tuple[torch.Tensor, torch.Tensor]:
        image, mask = sample
        ratio = random.uniform(*self.ratio_range)
        size = fit_scale((image.height, image.width), self.scale[0] * ratio, self.scale[1] * ratio)
        image, mask = rescale(image, mask, size)
        image, mask = random_crop(image, mask, self.crop, self.cat_max_ratio)
        if random.random() < self.hflip:
            image, mask = image.transpose(Image.FLIP_LEFT_RIGHT), mask[:, ::-1].copy()
        if self.photometric:
            image = photometric_distortion(image)
        x, y = to_tensors(image, mask, self.mean, self.std)
        pad_h, pad_w = self.crop - x.shape[1], self.crop - x.shape[2]
        if pad_h or pad_w:  # padding: 0 in the normalised image, ignored in the labels (mmseg's Pad)
            x = F.pad(x, (0, pad_w, 0, pad_h), value=0.)  # (3, crop, crop)
            y = F.pad(y, (0, pad_w, 0, pad_h), value=IGNORE_INDEX)  # (crop, crop)
        return x, y


class SegmentationEvalTransform:
    """(PIL image, labels) -> (image rescaled to fit `scale`, normalised (3, h, w); labels at full size (H, W)).

    Args:
        mean: Normalisation mean.
        std: Normalisation std.
        scale: (long, short) side the image is rescaled to fit (ADE20K: (2048, 512)).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], scale: Tuple[int, int] = (2048, 512)) -> None:
        self.mean, self.std, self.scale = tuple(mean), tuple(std), scale

    def __call__(self, sample: Sample) -> Tuple[torch.Tensor, torch.Tensor]:
        image, mask = sample
        size = fit_scale((image.height, image.width), *self.scale)
        if size != (image.height, image.width):
            image = image.resize((size[1], size[0]), Image.BILINEAR)
        return to_tensors(image, mask, self.mean, self.std)
