"""ADE20K (SceneParsing, Zhou et al. 2017) in its release layout, the data set of the paper's Table 5.

    ROOT/ADEChallengeData2016/images/{training,validation}/*.jpg
    ROOT/ADEChallengeData2016/annotations/{training,validation}/*.png    (ROOT may be ADEChallengeData2016 itself)

Raw label 0 ("other objects") is ignored and classes 1..150 become 0..149 (mmseg's reduce_zero_label, which
Segmenter's ADE20K pipeline uses).
"""
from pathlib import Path

import numpy as np

from ..errors import DataError
from .folder import MaskPairDataset, pair_images_and_masks

LAYOUT = ('ADEChallengeData2016/images/{training,validation}/*.jpg and '
          'ADEChallengeData2016/annotations/{training,validation}/*.png')
_SPLITS = {'train': 'training', 'val': 'validation'}

# the 150 classes in label order (objectInfo150 of the release, names as in mmseg's ADE20KDataset)
CLASSES = (
    'wall', 'building', 'sky', 'floor', 'tree', 'ceiling', 'road', 'bed', 'windowpane', 'grass', 'cabinet',
    'sidewalk', 'person', 'earth', 'door', 'table', 'mountain', 'plant', 'curtain', 'chair', 'car', 'water',
    'painting', 'sofa', 'shelf', 'house', 'sea', 'mirror', 'rug', 'field', 'armchair', 'seat', 'fence', 'desk',
    'rock', 'wardrobe', 'lamp', 'bathtub', 'railing', 'cushion', 'base', 'box', 'column', 'signboard',
    'chest of drawers', 'counter', 'sand', 'sink', 'skyscraper', 'fireplace', 'refrigerator', 'grandstand', 'path',
    'stairs', 'runway', 'case', 'pool table', 'pillow', 'screen door', 'stairway', 'river', 'bridge', 'bookcase',
    'blind', 'coffee table', 'toilet', 'flower', 'book', 'hill', 'bench', 'countertop', 'stove', 'palm',
    'kitchen island', 'computer', 'swivel chair', 'boat', 'bar', 'arcade machine', 'hovel', 'bus', 'towel', 'light',
    'truck', 'tower', 'chandelier', 'awning', 'streetlight', 'booth', 'television receiver', 'airplane',
    'dirt track', 'apparel', 'pole', 'land', 'bannister', 'escalator', 'ottoman', 'bottle', 'buffet', 'poster',
    'stage', 'van', 'ship', 'fountain', 'conveyer belt', 'canopy', 'washer', 'plaything', 'swimming pool', 'stool',
    'barrel', 'basket', 'waterfall', 'tent', 'bag', 'minibike', 'cradle', 'oven', 'ball', 'food', 'step', 'tank',
    'trade name', 'microwave', 'pot', 'animal', 'bicycle', 'lake', 'dishwasher', 'screen', 'blanket', 'sculpture',
    'hood', 'sconce', 'vase', 'traffic light', 'tray', 'ashcan', 'fan', 'pier', 'crt screen', 'plate', 'monitor',
    'bulletin board', 'shower', 'radiator', 'glass', 'clock', 'flag')


def reduce_zero_label(raw: np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """ADE20K raw labels -> training labels: 0 -> ignore_index, c -> c - 1."""
    out = raw.astype(np.int64) - 1
    out[raw == 0] = ignore_index
    return out.astype(np.uint8)


def ade20k(root: str, split: str) -> MaskPairDataset:
    """The ADE20K split ('train': 20,210 images, 'val': 2,000) as (PIL image, label array) pairs."""
    base = Path(root)
    if (base / 'ADEChallengeData2016').is_dir():
        base = base / 'ADEChallengeData2016'
    images, masks = base / 'images' / _SPLITS[split], base / 'annotations' / _SPLITS[split]
    if not images.is_dir() or not masks.is_dir():
        raise DataError(f'{str(root)!r} is not an ADE20K release: expected {LAYOUT}')
    return MaskPairDataset(list(CLASSES), pair_images_and_masks(images, masks), label_map=reduce_zero_label)
