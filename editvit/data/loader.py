"""Data loaders: augmentation seeded per image, undecodable images dropped and counted when asked."""
import random
from typing import Callable, List, Optional, Tuple, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class TransformedDataset(Dataset):
    """Applies a transform to (PIL image, label) pairs. Indexed by an int, or by (int, seed) from a
    ResumableSampler: the transform then runs with python, numpy and torch RNGs seeded with `seed`, and the caller's
    RNG states are left as they were."""

    def __init__(self, dataset: Dataset, transform: Callable) -> None:
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: Union[int, Tuple[int, int]]) -> Tuple[Optional[torch.Tensor], int]:
        index, seed = item if isinstance(item, tuple) else (item, None)
        image, label = self.dataset[index]
        if image is None:  # undecodable, and the data set was asked to skip it
            return None, label
        if seed is None:
            return self.transform(image), label
        py_state, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            random.seed(seed)
            np.random.seed(seed % 2 ** 32)
            torch.manual_seed(seed)
            try:
                return self.transform(image), label
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)


def collate_drop_bad(batch: List[Tuple[Optional[torch.Tensor], int]]) -> Tuple[torch.Tensor, torch.Tensor, int]:
    """Stack a batch, leaving out undecodable images: (images (B, C, H, W), labels (B,), number left out)."""
    good = [(x, y) for x, y in batch if x is not None]
    if not good:
        return torch.empty(0), torch.empty(0, dtype=torch.long), len(batch)
    images = torch.stack([x for x, _ in good])  # (B, C, H, W)
    labels = torch.tensor([y for _, y in good], dtype=torch.long)  # (B,)
    return images, labels, len(batch) - len(good)


def create_loader(dataset: Dataset, transform: Callable, sampler: Sampler, batch_size: int, num_workers: int = 0,
                  drop_last: bool = False, pin_memory: bool = False, seed: int = 0) -> DataLoader:
    """A DataLoader over transform(dataset) in the sampler's order. Its own generator (seeded) draws the worker base
    seeds, so creating an iterator never consumes the global torch RNG that training relies on."""
    return DataLoader(
        TransformedDataset(dataset, transform), batch_size=batch_size, sampler=sampler, num_workers=num_workers,
        drop_last=drop_last, pin_memory=pin_memory, collate_fn=collate_drop_bad,
        generator=torch.Generator().manual_seed(seed), persistent_workers=False)
