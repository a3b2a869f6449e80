"""A balanced subset of a data set, written once as PNG class folders (ROOT/train/<class>/, ROOT/test/<class>/).

Training on a subset is how the suite fits a 2-core CPU. Written as lossless PNGs of the decoded images, the subset
trains through the ordinary 'imagefolder' path of the engine, whatever the source format (JPEG folders,
torchvision's CIFAR pickles, Fashion-MNIST idx files, the synthetic set). The choice of images depends only on
`selection_seed`, so every model and training seed sees the same images.
"""
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np
from torch.utils.data import Dataset

from ..analysis import load_images
from ..analysis.images import NamedImage
from ..data import create_dataset

PathLike = Union[str, Path]
MANIFEST = 'subset.json'
SPLITS = {'train': 'train', 'val': 'test'}  # engine split -> folder


@dataclass(frozen=True)
class Subset:
    """A written subset: its folder, the data set it came from and how many images per class each split holds."""
    root: Path
    dataset: str
    train_per_class: int
    test_per_class: int
    image_size: int
    classes: List[str]

    # the engine reads a subset as class folders
    engine_dataset = 'imagefolder'

    @property
    def num_train(self) -> int:
        return self.train_per_class * len(self.classes)

    @property
    def num_test(self) -> int:
        return self.test_per_class * len(self.classes)

    def test_images(self, per_class: int) -> List[Path]:
        """The first per_class test images of every class, class by class (the sink analysis' images)."""
        return [p for c in range(len(self.classes)) for p in sorted((self.root / 'test' / f'{c:02d}').iterdir())
                [:per_class]]

    def named_test_images(self, per_class: int) -> List[NamedImage]:
        """test_images as (name, RGB image) pairs, as the analysis takes them."""
        return load_images(self.test_images(per_class))


def _per_class_indices(labels: np.ndarray, per_class: int, seed: int, name: str) -> Dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    chosen = {}
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < per_class:
            raise ValueError(f'{name} has {len(idx)} images of class {c}, fewer than the {per_class} asked for')
        chosen[int(c)] = np.sort(rng.choice(idx, per_class, replace=False))
    return chosen


def _labels(dataset: Dataset) -> np.ndarray:
    for attr in ('targets', 'labels'):  # torchvision CIFAR, Fashion-MNIST: labels without decoding the images
        if hasattr(dataset, attr):
            return np.asarray(getattr(dataset, attr))
    if hasattr(dataset, 'samples'):
        return np.asarray([s[1] for s in dataset.samples])
    return np.asarray([dataset[i][1] for i in range(len(dataset))])


def make_subset(dataset: str, data_dir: Optional[PathLike], output: PathLike, train_per_class: int,
                test_per_class: int, selection_seed: int = 0, synthetic_samples: Optional[int] = None) -> Subset:
    """Write (or reuse, when its manifest matches) a subset of dataset with the given images per class.

    For the synthetic set, synthetic_samples training images are generated (its validation split has a quarter as
    many); None: just enough for the subset.

    Class folders are named 00, 01, ... in the data set's class order, so labels keep their meaning; the class
    names are in ROOT/subset.json.
    """
    root = Path(output)
    wanted = dict(dataset=dataset, data_dir=str(data_dir) if data_dir else None, train_per_class=train_per_class,
                  test_per_class=test_per_class, selection_seed=selection_seed)
    manifest = root / MANIFEST
    if manifest.is_file():
        saved = json.loads(manifest.read_text())
        if {k: saved.get(k) for k in wanted} == wanted:
            return Subset(root, dataset, train_per_class, test_per_class, saved['image_size'], saved['classes'])
        raise ValueError(f'{str(root)!r} holds a different subset ({saved}); choose another folder')
    if synthetic_samples is None:
        synthetic_samples = 10 * max(train_per_class, 4 * test_per_class)  # 10 classes
    image_size = 0
    classes: List[str] = []
    for split, folder in SPLITS.items():
        source = create_dataset(dataset, str(data_dir) if data_dir else None, split,
                                synthetic_samples=synthetic_samples)
        classes = list(source.classes)
        per_class = train_per_class if split == 'train' else test_per_class
        for c, indices in _per_class_indices(_labels(source), per_class, selection_seed, f'{dataset} {split}').items():
            class_dir = root / folder / f'{c:02d}'
            class_dir.mkdir(parents=True, exist_ok=True)
            for i in indices:
                image, label = source[int(i)]
                if label != c:
                    raise ValueError(f'{dataset} {split} image {i}: label {label} differs from its listed {c}')
                image.convert('RGB').save(class_dir / f'{int(i):06d}.png')
                image_size = image.size[0]
    manifest.write_text(json.dumps(dict(wanted, image_size=image_size, classes=classes), indent=2) + '\n')
    return Subset(root, dataset, train_per_class, test_per_class, image_size, classes)
