"""Training batches of small images straight from a decoded uint8 tensor, augmented a whole batch at a time: the fast
path that replaces the PIL + DataLoader pipeline for CIFAR, Fashion-MNIST and folders of small images.

It follows the same rules as that pipeline: the images of an epoch come in the ResumableSampler's order (so DDP
shards and repeated augmentation are unchanged), and a batch's augmentation is drawn from the seed of its first
image, sample_seed(seed, epoch, rank, position): a run resumed at any batch boundary reads and augments exactly the
images an uninterrupted run would have.
"""
from typing import Iterator, Optional, Sequence, Tuple

import torch
from torchvision.transforms.v2 import functional as TF

from ..errors import ConfigError
from .augment_options import AugmentOptions
from .batch_augment import BatchAugment
from .decoded import SMALL_SIZE, DecodedImages, decode_dataset
from .sampler import ResumableSampler, sample_seed

DATA_PATHS = ('auto', 'tensor', 'pil')


class TensorBatches:
    """Iterates (images (B, C, H, W) normalised float on `device`, labels (B,), images left out) for the sampler's
    current epoch, from its start position on, like the DataLoader of create_loader with drop_last=True.

    Args:
        decoded: The whole training set as tensors.
        sampler: The rank's ResumableSampler (from create_train_sampler); its set_epoch chooses what is iterated.
        augment: The batch augmentation.
        batch_size: Images per batch (a last incomplete batch is dropped).
        device: Where batches are augmented and returned.
    """

    def __init__(self, decoded: DecodedImages, sampler: ResumableSampler, augment: BatchAugment, batch_size: int,
                 device: torch.device = torch.device('cpu')) -> None:
        self.device = torch.device(device)
        on_gpu = self.device.type != 'cpu'
        self.images = decoded.images.to(self.device) if on_gpu else decoded.images  # (N, C, H, W) uint8
        self.labels = decoded.labels
        self.good = decoded.good
        self.all_good = bool(decoded.good.all())
        self.sampler = sampler
        self.augment = augment.to(self.device)
        self.batch_size = batch_size

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """As ResumableSampler.set_epoch: iterate over `epoch` from its sample `start` on."""
        self.sampler.set_epoch(epoch, start)

    def __len__(self) -> int:
        """Full batches left in the epoch."""
        return len(self.sampler) // self.batch_size

    def __iter__(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor, int]]:
        s = self.sampler
        order = torch.as_tensor(list(s.base), dtype=torch.long)  # (len,) this rank's indices, whole epoch
        for first in range(s.start, len(order) - self.batch_size + 1, self.batch_size):
            yield self.batch(order[first:first + self.batch_size], sample_seed(s.seed, s.epoch, s.rank, first))

    def batch(self, indices: torch.Tensor, seed: int) -> Tuple[torch.Tensor, torch.Tensor, int]:
        """The augmented batch of these data set indices, its random parameters drawn from `seed`; torch's RNG
        state outside is left as it was."""
        bad = 0
        if not self.all_good:
            keep = self.good[indices]
            bad = int((~keep).sum())
            indices = indices[keep]
        labels = self.labels[indices]  # (B,)
        if self.device.type == 'cpu':
            images = self.images[indices]  # (B, C, H, W) uint8
        else:
            images = self.images[indices.to(self.device)]  # (B, C, H, W) uint8, the set already on the device
            labels = labels.to(self.device, non_blocking=True)
        if len(indices) == 0:
            return torch.empty(0), labels, bad
        on_cuda = self.device.type == 'cuda'
        devices = [self.device.index if self.device.index is not None else torch.cuda.current_device()] if on_cuda \
            else []  # the CPU generator is always forked; a GPU's only when augmenting there
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            return self.augment(images), labels, bad


def create_train_batches(
        dataset,
        sampler: ResumableSampler,
        batch_size: int,
        img_size: Tuple[int, int],
        mean: Sequence[float],
        std: Sequence[float],
        options: AugmentOptions = AugmentOptions(),
        *,
        device: torch.device = torch.device('cpu'),
        data_path: str = 'auto',
        small_size: int = SMALL_SIZE,
) -> Optional[TensorBatches]:
    """The fast path's training batches for this data set, or None where the PIL path is to be used.

    Args:
        dataset: The training set (from create_dataset).
        sampler: Its ResumableSampler for this rank.
        batch_size: Images per batch.
        img_size, mean, std, options: As create_train_transform.
        device: Where batches are augmented (the training device).
        data_path: 'auto' (the tensor path for images of at most small_size pixels a side, the PIL path for
            larger ones), 'tensor' (the tensor path, or a ConfigError where it cannot be used) or 'pil'.
        small_size: The largest image side 'auto' takes the tensor path for.
    """
    if data_path not in DATA_PATHS:
        raise ConfigError(f'data_path must be one of {", ".join(DATA_PATHS)}, got {data_path!r}')
    if data_path == 'pil':
        return None
    decoded = decode_dataset(dataset, small_size if data_path == 'auto' else 1 << 30)
    if decoded is None:
        if data_path == 'tensor':
            raise ConfigError(f"data_path 'tensor' needs images of one size ({type(dataset).__name__} has images "
                              f"of different sizes, or is not a data set the tensor path reads); use 'auto' or 'pil'")
        return None
    if options.crop in ('src', 'none') and tuple(decoded.images.shape[-2:]) != tuple(img_size):
        # the PIL path resizes the short side to min(img_size) before its random crop: the same, once, here
        decoded.images = TF.resize(decoded.images, [min(img_size)],
                                   interpolation=TF.InterpolationMode(options.interpolation),
                                   antialias=True)  # (N, C, H', W') uint8
    augment = BatchAugment(img_size, mean, std, options)
    return TensorBatches(decoded, sampler, augment, batch_size, device)
