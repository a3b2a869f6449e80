"""A small deterministic segmentation set for tests and benchmarks: textured objects on textured backgrounds.

Class 0 is the background: smooth grey-ish noise, different in every image. Each object class k >= 1 has its own hue
and stripe orientation; an image holds 1 to 3 objects (ellipses or rectangles of 25-60% of the image side) that
may occlude each other, plus pixel noise. The labels are the objects' pixel masks. Everything is drawn from
(seed, split, index), so a set is the same on every machine.
"""
import colorsys
from typing import Tuple

import numpy as np
from PIL import Image
from torch.utils.data import Dataset


def textured_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth noise around a random grey: a coarse random 4x4 grid of offsets, upsampled. (size, size, 3) float."""
    yy, xx = np.mgrid[0:size, 0:size] * 4 // size  # (S, S) cell indices
    coarse = rng.uniform(-40, 40, (4, 4, 3))
    return rng.uniform(70, 170) + coarse[yy, xx]  # (S, S, 3)


class SyntheticSegmentation(Dataset):
    """(PIL RGB image, uint8 label array) pairs of textured objects pasted on textured backgrounds.

    Args:
        num_samples: Number of images.
        num_classes: Classes including the background (class 0); at least 2.
        image_size: Height and width.
        seed: Seed of the class textures and of the images.
        split: 'train' or 'val' (other images, the same classes).
        noise: Pixel noise standard deviation (0..255 scale).
    """

    def __init__(self, num_samples: int, num_classes: int, image_size: int, seed: int = 0, split: str = 'train',
                 noise: float = 20.) -> None:
        if num_classes < 2:
            raise ValueError(f'the synthetic set needs a background and at least one object class, got {num_classes}')
        self.num_samples = num_samples
        self.classes = ['background'] + [f'object_{k}' for k in range(1, num_classes)]
        self.image_size = image_size
        self.seed = seed
        self.split_id = 0 if split == 'train' else 1
        self.noise = noise
        rng = np.random.default_rng([seed, 7])
        hues = (np.arange(1, num_classes) / (num_classes - 1) + rng.uniform(0, 1)) % 1.0
        self.colours = np.array([colorsys.hsv_to_rgb(h, 0.8, 0.9) for h in hues]) * 255  # (K-1, 3)
        self.angles = rng.uniform(0, np.pi, num_classes - 1)  # stripe orientation per class

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> Tuple[Image.Image, np.ndarray]:
        S = self.image_size
        rng = np.random.default_rng([self.seed, self.split_id, index])
        yy, xx = np.mgrid[0:S, 0:S].astype(np.float64) / S  # (S, S) each
        image = textured_background(rng, S)  # (S, S, 3)
        labels = np.zeros((S, S), dtype=np.uint8)
        for _ in range(rng.integers(1, 4)):
            k = int(rng.integers(1, len(self.classes)))
            h, w = rng.uniform(0.25, 0.6, 2)
            cy, cx = rng.uniform(h / 2, 1 - h / 2), rng.uniform(w / 2, 1 - w / 2)
            if rng.random() < 0.5:
                inside = ((yy - cy) / (h / 2)) ** 2 + ((xx - cx) / (w / 2)) ** 2 <= 1  # ellipse
            else:
                inside = (np.abs(yy - cy) <= h / 2) & (np.abs(xx - cx) <= w / 2)  # rectangle
            angle = self.angles[k - 1]
            stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi * 4)  # (S, S)
            texture = self.colours[k - 1] * (0.8 + 0.2 * stripes[..., None])  # (S, S, 3)
            image[inside] = texture[inside]
            labels[inside] = k
        image = image + rng.normal(0., self.noise, image.shape)
        return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), 'RGB'), labels
