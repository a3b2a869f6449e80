"""Segmentation data sets by name, and loaders built on the classification engine's resumable, per-image-seeded
loading (`editvit.data.create_loader`)."""
from typing import Callable, List, Optional, Tuple

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..data import create_dataset, create_loader, resolve_root
from ..errors import DataError
from .ade20k import LAYOUT as ADE20K_LAYOUT
from .ade20k import ade20k
from .folder import LAYOUT as FOLDER_LAYOUT
from .folder import mask_folder
from .pasted import PastedObjects
from .synthetic import SyntheticSegmentation

SEG_DATASETS = ('ade20k', 'maskfolder', 'synthetic', 'pasted')
# classification sets whose images 'pasted' pastes; Fashion-MNIST items lie on black, so they come with pixel masks
OBJECT_DATASETS = ('fashion-mnist', 'cifar10', 'cifar100', 'imagefolder')


def create_segmentation_dataset(name: str, root: Optional[str], split: str, *, seed: int = 0, num_classes: int = 3,
                                image_size: int = 32, synthetic_samples: int = 256,
                                objects_dataset: str = 'fashion-mnist') -> Dataset:
    """(PIL image, uint8 labels (H, W)) pairs with `.classes`.

    Args:
        name: 'ade20k', 'maskfolder', 'synthetic' or 'pasted' (`PastedObjects` of objects_dataset).
        root: Its folder (None: $EDITVIT_DATA/<name>; unused for 'synthetic'; for 'pasted' the folder of
            objects_dataset, default $EDITVIT_DATA/<objects_dataset>).
        split: 'train' or 'val'.
        seed: Seed of the synthetic set.
        num_classes: Classes of the synthetic set, background included.
        image_size: Image size of the synthetic and pasted sets.
        synthetic_samples: Training images of the synthetic and pasted sets (validation: a quarter as many).
        objects_dataset: The classification set whose images 'pasted' pastes (one of OBJECT_DATASETS).
    """
    if split not in ('train', 'val'):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if name == 'synthetic':
        n = synthetic_samples if split == 'train' else max(synthetic_samples // 4, 1)
        return SyntheticSegmentation(n, num_classes, image_size, seed=seed, split=split)
    if name == 'pasted':
        if objects_dataset not in OBJECT_DATASETS:
            raise DataError(f'objects_dataset must be one of {", ".join(OBJECT_DATASETS)}, got {objects_dataset!r}')
        objects = create_dataset(objects_dataset, root, split, seed=seed)
        n = synthetic_samples if split == 'train' else max(synthetic_samples // 4, 1)
        return PastedObjects(objects, n, image_size, seed=seed, split=split,
                             mask_threshold=30 if objects_dataset == 'fashion-mnist' else None)
    if name not in SEG_DATASETS:
        raise DataError(f'unknown segmentation dataset {name!r}; choose one of {", ".join(SEG_DATASETS)}')
    path = resolve_root(name, root)
    if not path.is_dir():
        layout = ADE20K_LAYOUT if name == 'ade20k' else FOLDER_LAYOUT
        raise DataError(f'data directory {str(path)!r} for {name!r} does not exist; expected {layout}')
    return ade20k(str(path), split) if name == 'ade20k' else mask_folder(str(path), split)


class PairAsImage(Dataset):
    """Presents (image, labels) samples to the engine's `TransformedDataset` as ((image, labels), index), so the joint
    transform receives the pair and runs under the engine's per-image seeding."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return self.dataset[index], index


def collate_segmentation(batch: List[Tuple[Tuple[torch.Tensor, torch.Tensor], int]]):
    """((image, labels), index) samples -> (images (B, 3, H, W), labels (B, H, W), 0 skipped images)."""
    shapes = {x.shape for (x, _), _ in batch}
    if len(shapes) > 1:
        raise DataError(f'images of different sizes {sorted(shapes)} in one batch: evaluate with batch size 1')
    images = torch.stack([x for (x, _), _ in batch])  # (B, 3, H, W)
    labels = torch.stack([y for (_, y), _ in batch])  # (B, H, W)
    return images, labels, 0


def create_segmentation_loader(dataset: Dataset, transform: Callable, sampler: Sampler, batch_size: int,
                               num_workers: int = 0, drop_last: bool = False, pin_memory: bool = False,
                               seed: int = 0) -> DataLoader:
    """The engine's `create_loader` over (image, labels) pairs with a joint transform."""
    loader = create_loader(PairAsImage(dataset), transform, sampler, batch_size, num_workers, drop_last=drop_last,
                           pin_memory=pin_memory, seed=seed)
    loader.collate_fn = collate_segmentation
    return loader
