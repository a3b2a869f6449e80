"""A segmentation set derived from real images: classification images (Fashion-MNIST, CIFAR-10, ...) pasted on
textured backgrounds, their pixel masks as labels.

Fashion-MNIST items lie on black, so an item's mask is its pixels brighter than `mask_threshold`; for photographs
without a background (CIFAR-10) pass mask_threshold=None and the whole pasted square is the object. Each item is
tinted with a random colour, so colour says nothing about the class: only shape and texture do. Class 0 is the
background, class c + 1 the objects of class c.
"""
import colorsys
from typing import Optional, Tuple

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from .synthetic import textured_background


class PastedObjects(Dataset):
    """(PIL RGB image, uint8 labels) pairs of 1 to max_objects classification images pasted on a background.

    Args:
        objects: (PIL image, class) pairs with `.classes`, e.g. `editvit.data.create_dataset('fashion-mnist', ...)`.
        num_samples: Number of images.
        image_size: Height and width.
        seed: Seed of the composition (which objects, where, how large, tint, noise).
        split: 'train' or 'val' (different compositions; give the objects of the matching split).
        max_objects: Most objects an image holds.
        scale: Range of an object's side over the image side.
        mask_threshold: An object pixel belongs to the object when its grey level exceeds this (None: all do).
        noise: Pixel noise standard deviation (0..255 scale).
    """

    def __init__(self, objects: Dataset, num_samples: int, image_size: int, seed: int = 0, split: str = 'train',
                 max_objects: int = 2, scale: Tuple[float, float] = (0.45, 0.7),
                 mask_threshold: Optional[int] = 30, noise: float = 10.) -> None:
        self.objects = objects
        self.classes = ['background'] + list(objects.classes)
        self.num_samples, self.image_size, self.seed = num_samples, image_size, seed
        self.split_id = 0 if split == 'train' else 1
        self.max_objects, self.scale, self.mask_threshold, self.noise = max_objects, scale, mask_threshold, noise

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> Tuple[Image.Image, np.ndarray]:
        S = self.image_size
        rng = np.random.default_rng([self.seed, self.split_id, index])
        image = textured_background(rng, S)  # (S, S, 3)
        labels = np.zeros((S, S), dtype=np.uint8)
        for _ in range(rng.integers(1, self.max_objects + 1)):
            item, label = self.objects[int(rng.integers(len(self.objects)))]
            side = int(round(rng.uniform(*self.scale) * S))
            grey = np.asarray(item.convert('L').resize((side, side), Image.BILINEAR), dtype=np.float64)  # (s, s)
            top, left = rng.integers(0, S - side + 1, 2)
            inside = grey > self.mask_threshold if self.mask_threshold is not None else np.ones_like(grey, bool)
            tint = np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.3, 0.9), 1.0))  # (3,)
            pixels = 40 + 215 * grey[..., None] / 255 * tint  # (s, s, 3)
            window = (slice(top, top + side), slice(left, left + side))
            image[window][inside] = pixels[inside]
            labels[window][inside] = label + 1
        image = image + rng.normal(0., self.noise, image.shape)
        return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), 'RGB'), labels
