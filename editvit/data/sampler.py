"""Samplers whose order is a function of (seed, epoch) and which can start mid-epoch, so a resumed run reads exactly
the images an uninterrupted run would have read, and augments them the same way."""
from typing import Iterator, Tuple

import numpy as np
from timm.data.distributed_sampler import RepeatAugSampler
from torch.utils.data import Dataset, DistributedSampler, Sampler


def sample_seed(seed: int, epoch: int, rank: int, position: int) -> int:
    """The augmentation seed of the image at `position` of `rank`'s share of `epoch`."""
    return int(np.random.SeedSequence([seed, epoch, rank, position]).generate_state(1, np.uint64)[0] >> 1)


class ResumableSampler(Sampler):
    """Yields (index, augmentation seed) for one rank's share of an epoch, from a chosen position on.

    The index order comes from the base sampler: torch's DistributedSampler (seeded with the run's seed) or timm's
    RepeatAugSampler (which seeds its shuffle with the epoch alone, so the epoch it is given is shifted by the seed).
    The augmentation seed ties each image's random crop, flip and 3-Augment choice to (seed, epoch, rank,
    position), independent of data loader workers and of where a run was interrupted.

    Args:
        base: The index sampler of this rank.
        seed: The run's seed.
        rank: This process's rank.
        epoch_offset: Added to the epoch handed to the base sampler.
    """

    def __init__(self, base: Sampler, seed: int, rank: int = 0, epoch_offset: int = 0) -> None:
        self.base = base
        self.seed = seed
        self.rank = rank
        self.epoch_offset = epoch_offset
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Iterate over `epoch`, skipping its first `start` samples (those read before a checkpoint)."""
        self.epoch, self.start = epoch, start
        self.base.set_epoch(epoch + self.epoch_offset)

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        order = list(self.base)
        for position in range(self.start, len(order)):
            yield order[position], sample_seed(self.seed, self.epoch, self.rank, position)

    def __len__(self) -> int:
        return len(self.base) - self.start


def create_train_sampler(dataset: Dataset, seed: int, rank: int = 0, world_size: int = 1,
                         repeated_aug: bool = False) -> ResumableSampler:
    """A shuffling sampler for one rank, with DeiT's repeated augmentation (3 repeats) if asked."""
    if repeated_aug:
        base = RepeatAugSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, num_repeats=3)
        return ResumableSampler(base, seed, rank, epoch_offset=seed * 100_003)
    base = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
    return ResumableSampler(base, seed, rank)


class ShardSampler(Sampler):
    """Every world_size-th index from rank on, in order and without padding: the ranks' shares together hold each
    image once, so metrics summed over ranks are exact."""

    def __init__(self, length: int, rank: int = 0, world_size: int = 1) -> None:
        self.indices = range(rank, length, world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
