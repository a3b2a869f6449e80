"""`create_dataset`: every data set the recipe trains on, by name, as (PIL image, label) pairs with `.classes`.

Locations come from the caller (`root`) or from the environment variable EDITVIT_DATA, as $EDITVIT_DATA/<name>.
"""
import os
from pathlib import Path
from typing import Optional

from torch.utils.data import Dataset
from torchvision import datasets as tv_datasets

from ..errors import ConfigError, DataError
from .fashion_mnist import LAYOUT as FASHION_LAYOUT
from .fashion_mnist import FashionMNIST
from .folder import ImageFolderDataset, scan_class_folders, split_per_class
from .synthetic import SyntheticDataset

DATASETS = ('imagefolder', 'cifar10', 'cifar100', 'fashion-mnist', 'synthetic')
DATA_ENV = 'EDITVIT_DATA'
_VAL_FOLDERS = ('val', 'validation', 'test')
_CIFAR = {'cifar10': (tv_datasets.CIFAR10, 'cifar-10-batches-py'),
          'cifar100': (tv_datasets.CIFAR100, 'cifar-100-python')}
FOLDER_LAYOUT = 'ROOT/train/<class>/<image> and ROOT/val/<class>/<image> (or test/ or validation/)'


def resolve_root(name: str, root: Optional[str]) -> Path:
    """The data folder: root if given, otherwise $EDITVIT_DATA/<name>."""
    if root:
        return Path(root).expanduser()
    base = os.environ.get(DATA_ENV)
    if not base:
        raise DataError(f'no data location for {name!r}: pass --data-dir PATH or set {DATA_ENV} '
                        f'(the data is then read from ${DATA_ENV}/{name})')
    return Path(base).expanduser() / name


def _folder_split(root: Path, split: str, val_split_per_class: int, seed: int, skip_bad_images: bool) -> Dataset:
    train_dir = root / 'train'
    if not train_dir.is_dir():
        raise DataError(f'{str(root)!r} has no train/ folder; expected the layout {FOLDER_LAYOUT}')
    val_dir = next((root / d for d in _VAL_FOLDERS if (root / d).is_dir()), None)
    if val_split_per_class:
        classes, samples = scan_class_folders(train_dir)
        train, val = split_per_class(samples, val_split_per_class, seed)
        return ImageFolderDataset(classes, train if split == 'train' else val, skip_bad_images)
    if split == 'train':
        return ImageFolderDataset(*scan_class_folders(train_dir), skip_bad_images=skip_bad_images)
    if val_dir is None:
        raise DataError(f'{str(root)!r} has no val/, validation/ or test/ folder; add one ({FOLDER_LAYOUT}) or carve '
                        f'a validation split from train/ with --val-split-per-class K')
    classes, samples = scan_class_folders(val_dir)
    train_classes, _ = scan_class_folders(train_dir)
    if classes != train_classes:
        only_val, only_train = sorted(set(classes) - set(train_classes)), sorted(set(train_classes) - set(classes))
        raise DataError(f'the class folders of {str(val_dir)!r} differ from those of {str(train_dir)!r}: '
                        f'only in val: {", ".join(only_val) or "none"}; '
                        f'only in train: {", ".join(only_train) or "none"}')
    return ImageFolderDataset(classes, samples, skip_bad_images)


def _check_no_carve(name: str, val_split_per_class: int) -> None:
    """ConfigError for a validation split carved from a data set that has its own (it would be ignored)."""
    if val_split_per_class:
        raise ConfigError(f'data set {name} has its own validation split; --val-split-per-class '
                          f'{val_split_per_class} carves one from class folders only: drop the option (or pass 0)')


def create_dataset(
        name: str,
        root: Optional[str],
        split: str,
        *,
        seed: int = 0,
        val_split_per_class: int = 0,
        skip_bad_images: bool = False,
        num_classes: int = 10,
        image_size: int = 32,
        synthetic_samples: int = 256,
) -> Dataset:
    """A data set by name.

    Args:
        name: One of DATASETS.
        root: Its folder (None: $EDITVIT_DATA/<name>; unused for 'synthetic').
        split: 'train' or 'val'.
        seed: Seed of the carved validation split and of the synthetic images.
        val_split_per_class: For class folders without a validation folder, hold out this many training images per
            class as the validation split (0: use the val/ folder). A data set with its own validation split
            (synthetic, fashion-mnist, CIFAR in torchvision's format) refuses it with a ConfigError.
        skip_bad_images: Give undecodable images as None (the loader drops and counts them) instead of failing.
        num_classes: Classes of the synthetic set, at most synthetic_samples (a ConfigError otherwise).
        image_size: Image size of the synthetic set.
        synthetic_samples: Training images of the synthetic set (its validation split has a quarter as many, and at
            least one of each class).
    """
    if split not in ('train', 'val'):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if name == 'synthetic':
        _check_no_carve(name, val_split_per_class)
        if num_classes > synthetic_samples:  # its validation split has an image of each class: O(classes) work
            raise ConfigError(f'the synthetic set of {num_classes} classes has {synthetic_samples} training images, '
                              f'fewer than one a class: raise --synthetic-samples or lower --num-classes')
        n = synthetic_samples if split == 'train' else max(synthetic_samples // 4, num_classes)
        return SyntheticDataset(n, num_classes, image_size, seed=seed, split=split)
    if name not in DATASETS:
        raise DataError(f'unknown dataset {name!r}; choose one of {", ".join(DATASETS)}')
    path = resolve_root(name, root)
    if not path.is_dir():
        layout = FASHION_LAYOUT if name == 'fashion-mnist' else FOLDER_LAYOUT
        raise DataError(f'data directory {str(path)!r} for {name!r} does not exist; expected {layout}')
    if name == 'fashion-mnist':
        _check_no_carve(name, val_split_per_class)
        return FashionMNIST(path, split)
    if name in _CIFAR:
        cls, batches = _CIFAR[name]
        for base in (path, path.parent):  # ROOT, or ROOT/cifar-10-batches-py itself
            if (base / batches).is_dir():
                _check_no_carve(f'{name} ({batches}/)', val_split_per_class)
                try:
                    return cls(str(base), train=split == 'train', download=False)
                except RuntimeError as e:  # torchvision's integrity check (its text suggests download=True)
                    raise DataError(f'{str(base / batches)!r} is not a complete {name} copy (a file is missing or '
                                    f'its checksum differs); replace it with the original python-version '
                                    f'archive') from e
        if not (path / 'train').is_dir():
            raise DataError(f'{str(path)!r} holds neither {batches}/ (torchvision format) nor JPEG class folders '
                            f'({FOLDER_LAYOUT})')
    return _folder_split(path, split, val_split_per_class, seed, skip_bad_images)
