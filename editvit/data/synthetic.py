"""A small deterministic image set for tests and smoke runs: one colour pattern per class, plus noise."""
from typing import Tuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset


class SyntheticDataset(Dataset):
    """Images that a tiny model can learn in a few steps, the same on every machine for a given seed.

    Each class has a random 4x4 RGB prototype, upsampled to the image size; a sample is its class prototype plus
    Gaussian noise drawn from (seed, split, index). Labels cycle through the classes, so every class is balanced.

    Args:
        num_samples: Number of images.
        num_classes: Number of classes.
        image_size: Height and width of the images.
        seed: Seed of the prototypes and the noise.
        split: 'train' or 'val' (different noise, same prototypes).
        noise: Noise standard deviation, in units of the 0..255 pixel range.
    """

    def __init__(self, num_samples: int, num_classes: int, image_size: int, seed: int = 0, split: str = 'train',
                 noise: float = 40.) -> None:
        self.num_samples = num_samples
        self.classes = [f'class_{i}' for i in range(num_classes)]
        self.image_size = image_size
        self.seed = seed
        self.split_id = 0 if split == 'train' else 1
        self.noise = noise
        g = torch.Generator().manual_seed(seed)
        protos = torch.randint(0, 256, (num_classes, 3, 4, 4), generator=g).float()  # (K, 3, 4, 4)
        # Upsampled one image at a time: all K at once took 30 s and 1.2 GB for 100,000 classes at 32 px. The
        # source cell of each pixel comes from the same nearest interpolation that upsampled them all before.
        cells = torch.arange(16.).view(1, 1, 4, 4)  # (1, 1, 4, 4)
        self.cell_of_pixel = torch.nn.functional.interpolate(
            cells, size=(image_size, image_size), mode='nearest').long().view(image_size, image_size).numpy()  # (S, S)
        self.cells = protos.permute(0, 2, 3, 1).reshape(num_classes, 16, 3).numpy()  # (K, 16, 3)

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> Tuple[Image.Image, int]:
        label = index % len(self.classes)
        prototype = self.cells[label][self.cell_of_pixel]  # (S, S, 3)
        rng = np.random.default_rng([self.seed, self.split_id, index])
        pixels = prototype + rng.normal(0., self.noise, prototype.shape)  # (S, S, 3)
        return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), 'RGB'), label
