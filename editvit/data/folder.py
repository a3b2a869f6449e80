"""Images in class folders, `root/<class>/<image>` (ImageNet, Flowers-102, DTD, Caltech-256, CIFAR as JPEG)."""
import os
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

from ..errors import DataError
from .decode import read_rgb

Sample = Tuple[str, int]


def scan_class_folders(root: Path) -> Tuple[List[str], List[Sample]]:
    """The classes (sorted folder names) and the (path, class index) of every image under root."""
    if not root.is_dir():
        raise DataError(f'image folder {str(root)!r} does not exist')
    try:
        classes, class_to_idx = find_classes(str(root))
        samples = make_dataset(str(root), class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=True)
    except FileNotFoundError as e:
        raise DataError(f'{str(root)!r} holds no class folders: expected {str(root)}/<class>/<image>.jpg') from e
    if not samples:
        raise DataError(f'no images ({", ".join(IMG_EXTENSIONS[:4])}, ...) in the class folders of {str(root)!r}')
    empty = sorted(set(classes) - {classes[label] for _, label in samples})
    unreadable = [c for c in empty if not os.access(root / c, os.R_OK | os.X_OK)]
    if unreadable:  # torchvision's scan passes over a folder it may not read, as if it were empty
        raise DataError(f'permission denied: the class folder(s) {", ".join(map(repr, unreadable))} of '
                        f'{str(root)!r} cannot be read; check their permissions')
    if empty:  # a class without images would be a label the model never sees
        raise DataError(f'the class folder(s) {", ".join(map(repr, empty))} of {str(root)!r} hold no images '
                        f'({", ".join(IMG_EXTENSIONS[:4])}, ...); add images or remove the folder(s)')
    return classes, samples


def split_per_class(samples: Sequence[Sample], per_class: int, seed: int) -> Tuple[List[Sample], List[Sample]]:
    """Carve a validation split of `per_class` images from each class, chosen by seed (the paper did this for
    ImageNet-21k, which has no validation set). Returns (train samples, validation samples)."""
    by_class: dict = {}
    for s in samples:
        by_class.setdefault(s[1], []).append(s)
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in sorted(by_class):
        items = sorted(by_class[label])
        if len(items) <= per_class:
            raise DataError(f'class {label} has {len(items)} images, too few to hold out {per_class} for validation')
        chosen = set(rng.choice(len(items), size=per_class, replace=False).tolist())
        for i, s in enumerate(items):
            (val if i in chosen else train).append(s)
    return train, val


class ImageFolderDataset(Dataset):
    """(PIL image, class index) pairs from a list of samples; an undecodable image raises DataError naming the file,
    or with skip_bad_images gives (None, label) for the loader to drop and count."""

    def __init__(self, classes: List[str], samples: List[Sample], skip_bad_images: bool = False) -> None:
        self.classes = classes
        self.samples = samples
        self.skip_bad_images = skip_bad_images

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Tuple[Optional[Image.Image], int]:
        path, label = self.samples[index]
        try:
            return read_rgb(path), label
        except DataError:
            if self.skip_bad_images:
                return None, label
            raise
