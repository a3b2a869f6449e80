"""A whole data set as a run's data, read where it lies (no copy): the counterpart of a written `Subset` for runs on
every training and test image (the full-scale comparison, the demo)."""
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Union

import numpy as np

from ..analysis.images import NamedImage
from ..data import create_dataset
from .subset import _labels

PathLike = Union[str, Path]


def first_test_images(dataset: str, data_dir: Optional[PathLike], per_class: int, seed: int = 0,
                      synthetic_samples: int = 256) -> List[NamedImage]:
    """The first per_class images of every class of the test split, class by class, as (name, RGB image)."""
    data = create_dataset(dataset, str(data_dir) if data_dir else None, 'val', seed=seed,
                          synthetic_samples=synthetic_samples)
    labels = _labels(data)  # without decoding the images
    chosen = [i for c in range(len(data.classes)) for i in np.flatnonzero(labels == c)[:per_class]]
    return [(f'{i:05d}', data[int(i)][0].convert('RGB')) for i in chosen]


@dataclass(frozen=True)
class WholeDataSet:
    """A data set the engine reads by name (dataset, root): its image size, classes and split sizes."""
    root: Optional[Path]
    dataset: str
    image_size: int
    classes: List[str]
    num_train: int
    num_test: int

    @property
    def engine_dataset(self) -> str:
        return self.dataset

    def named_test_images(self, per_class: int) -> List[NamedImage]:
        return first_test_images(self.dataset, self.root, per_class)


def whole_dataset(dataset: str, root: Optional[PathLike] = None) -> WholeDataSet:
    """The whole data set (root None: $EDITVIT_DATA/<dataset>)."""
    train = create_dataset(dataset, str(root) if root else None, 'train')
    test = create_dataset(dataset, str(root) if root else None, 'val')
    image, _ = test[0]
    return WholeDataSet(Path(root) if root else None, dataset, image.size[0], list(train.classes), len(train),
                        len(test))
