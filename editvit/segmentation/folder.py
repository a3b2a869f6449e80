"""Images and label masks in folders, with a class-names file: the generic segmentation layout.

    ROOT/classes.txt                      one class name a line; line k names label k
    ROOT/images/{train,val}/NAME.jpg      (or .png, .jpeg, ...)
    ROOT/masks/{train,val}/NAME.png       one 8-bit label per pixel: 0..K-1, 255 = ignored
"""
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from ..errors import DataError
from ..data.decode import read_rgb
from .metrics import IGNORE_INDEX

LAYOUT = 'ROOT/classes.txt, ROOT/images/{train,val}/NAME.jpg and ROOT/masks/{train,val}/NAME.png'
_IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')


def pair_images_and_masks(images: Path, masks: Path) -> List[Tuple[str, str]]:
    """(image, mask) paths matched by file stem; an image without its mask is a DataError naming it."""
    found = sorted(p for p in images.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
    if not found:
        raise DataError(f'no images in {str(images)!r}')
    pairs = []
    for p in found:
        mask = masks / (p.stem + '.png')
        if not mask.is_file():
            raise DataError(f'image {str(p)!r} has no mask {str(mask)!r}')
        pairs.append((str(p), str(mask)))
    return pairs


def load_mask(path: str) -> np.ndarray:
    """An 8-bit label mask (H, W) as uint8; DataError names a file that does not decode, is not single-channel, or
    holds labels above 255 (a 16-bit mask is read when its labels fit 8 bits, never wrapped around)."""
    try:
        with Image.open(path) as img:
            if img.mode not in ('L', 'P', 'I;16', 'I'):
                raise DataError(f'mask {path!r} has mode {img.mode}: expected one label per pixel (mode L or P)')
            labels = np.array(img)  # (H, W)
    except PermissionError as e:
        raise DataError(f'cannot read mask {path!r}: permission denied; check its permissions') from e
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f'cannot decode mask {path!r}: {e}') from e
    if labels.dtype != np.uint8 and labels.size and (labels.min() < 0 or labels.max() > 255):
        raise DataError(f'mask {path!r} holds labels from {int(labels.min())} to {int(labels.max())}: editvit reads '
                        f'labels 0..254 and 255 for ignored pixels; remap the labels to fit 8 bits')
    return labels.astype(np.uint8)


class MaskPairDataset(Dataset):
    """(PIL RGB image, uint8 label array (H, W)) pairs, labels 0..K-1 and 255 for ignored pixels.

    Args:
        classes: Class names, label order.
        pairs: (image path, mask path) pairs.
        label_map: Turns a raw mask into labels (ADE20K: `reduce_zero_label`); None keeps it.
    """

    def __init__(self, classes: List[str], pairs: List[Tuple[str, str]],
                 label_map: Optional[Callable[[np.ndarray], np.ndarray]] = None) -> None:
        self.classes = classes
        self.pairs = pairs
        self.label_map = label_map

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Tuple[Image.Image, np.ndarray]:
        image_path, mask_path = self.pairs[index]
        image, mask = read_rgb(image_path), load_mask(mask_path)
        if self.label_map is not None:
            mask = self.label_map(mask)
        outside = (mask != IGNORE_INDEX) & (mask >= len(self.classes))
        if outside.any():
            raise DataError(f'mask {mask_path!r} holds labels {sorted(set(mask[outside].tolist()))} outside '
                            f'0..{len(self.classes) - 1} (and {IGNORE_INDEX} for ignored pixels)')
        if mask.shape != (image.height, image.width):
            raise DataError(f'mask {mask_path!r} is {mask.shape[1]}x{mask.shape[0]}, its image '
                            f'{image.width}x{image.height}')
        return image, mask

    def check_labelled(self) -> None:
        """DataError naming the folder when no mask labels a single pixel (all ignored): training on it would learn
        nothing without a word. Reads masks only until the first labelled pixel, so a usable set costs one mask."""
        for _, mask_path in self.pairs:
            mask = load_mask(mask_path)
            if self.label_map is not None:
                mask = self.label_map(mask)
            if (mask != IGNORE_INDEX).any():
                return
        folder = str(Path(self.pairs[0][1]).parent) if self.pairs else '?'
        raise DataError(f'no mask in {folder!r} labels a pixel: every pixel of its {len(self.pairs)} masks is ignored '
                        f'({IGNORE_INDEX}); label the pixels 0..{len(self.classes) - 1} as classes.txt orders them')


def mask_folder(root: str, split: str) -> MaskPairDataset:
    """The split ('train' or 'val') of a folder in the generic layout."""
    base = Path(root)
    names = base / 'classes.txt'
    if not names.is_file():
        raise DataError(f'{str(root)!r} has no classes.txt; expected {LAYOUT}')
    classes = [line.strip() for line in names.read_text().splitlines() if line.strip()]
    if not classes:
        raise DataError(f'{str(names)!r} names no classes; write one class name a line, label 0 first')
    twice = sorted({c for c in classes if classes.count(c) > 1})
    if twice:
        raise DataError(f'{str(names)!r} names {", ".join(map(repr, twice))} more than once; each label needs its own '
                        f'name')
    images, masks = base / 'images' / split, base / 'masks' / split
    if not images.is_dir() or not masks.is_dir():
        raise DataError(f'{str(root)!r} lacks images/{split}/ or masks/{split}/; expected {LAYOUT}')
    return MaskPairDataset(classes, pair_images_and_masks(images, masks))
