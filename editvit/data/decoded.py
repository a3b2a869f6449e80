"""A data set of small images decoded once into one uint8 tensor (N, C, H, W), for augmentation of whole batches.

CIFAR (torchvision's pickles), Fashion-MNIST (idx files) and the synthetic set are uint8 arrays in memory already:
they are taken as they are. Image folders are decoded once with PIL (the same `read_rgb` the PIL path uses) and the
tensor is cached on disk, so later runs skip the decoding:

    $EDITVIT_CACHE/.editvit-tensors-<id>.pt    if EDITVIT_CACHE is set
    <data folder>/.editvit-tensors-<id>.pt     else, if that folder is writable (next to train/, not inside it)
    ~/.cache/editvit/.editvit-tensors-<id>.pt  else

<id> names the list of image paths (so a training split and a carved validation split have separate files). The
file holds a content key, a hash of every image's path, label, size in bytes and modification time: a file that
is rewritten or replaced changes its size or mtime, and checking them costs one stat per image, where hashing the
bytes would read the whole data set at every start. A cache whose key differs is rebuilt. The file also holds a
BLAKE2 digest of the decoded pixels, checked on load: a truncated or corrupt cache is rebuilt with a one-line
notice, never used.
"""
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import datasets as tv_datasets

from ..errors import DataError
from ..weights import atomic_write
from .fashion_mnist import FashionMNIST
from .decode import read_rgb
from .folder import ImageFolderDataset, Sample
from .synthetic import SyntheticDataset

SMALL_SIZE = 64  # images up to this many pixels high and wide are "small": decoded whole, augmented in batches
CACHE_ENV = 'EDITVIT_CACHE'
CACHE_FORMAT = 1


@dataclass
class DecodedImages:
    """A whole data set as tensors: images (N, C, H, W) uint8, labels (N,) int64, good (N,) bool (False: the image
    did not decode and the data set skips bad images; its pixels are zeros)."""
    images: torch.Tensor
    labels: torch.Tensor
    good: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


def notice(message: str) -> None:
    print(f'editvit: {message}', file=sys.stderr)


def decode_dataset(dataset: Dataset, small_size: int = SMALL_SIZE) -> Optional[DecodedImages]:
    """The data set as one uint8 tensor, or None where that does not apply: images larger than small_size, images
    of different sizes, or a data set type this module does not know."""
    if isinstance(dataset, tv_datasets.CIFAR10):  # CIFAR100 too: (N, 32, 32, 3) uint8 in memory
        images = torch.from_numpy(np.ascontiguousarray(dataset.data)).permute(0, 3, 1, 2)  # (N, 3, 32, 32)
        labels = torch.as_tensor(dataset.targets, dtype=torch.long)
    elif isinstance(dataset, FashionMNIST):  # grey (N, 28, 28); PIL's convert('RGB') repeats it to three channels
        images = torch.from_numpy(np.array(dataset.images))[:, None].expand(-1, 3, -1, -1)  # (N, 3, H, W)
        labels = torch.from_numpy(dataset.labels.astype(np.int64))
    elif isinstance(dataset, SyntheticDataset):
        pairs = [dataset[i] for i in range(len(dataset))]
        images = torch.from_numpy(np.stack([np.asarray(img) for img, _ in pairs])).permute(0, 3, 1, 2)  # (N,3,H,W)
        labels = torch.tensor([label for _, label in pairs], dtype=torch.long)
    elif isinstance(dataset, ImageFolderDataset):
        return decode_folder(dataset, small_size)
    else:
        return None
    if max(images.shape[-2:]) > small_size:
        return None
    images = images.contiguous()
    return DecodedImages(images, labels, torch.ones(len(labels), dtype=torch.bool))


def _first_size(samples: Sequence[Sample]) -> Optional[Tuple[int, int]]:
    for path, _ in samples:
        try:
            with Image.open(path) as img:  # reads the header only
                return img.size
        except OSError:
            continue
    return None


def decode_folder(dataset: ImageFolderDataset, small_size: int = SMALL_SIZE) -> Optional[DecodedImages]:
    """An image folder data set as tensors, from the cache when it holds this data, else decoded and cached. None
    when its images are larger than small_size or of different sizes."""
    size = _first_size(dataset.samples)
    if size is None or max(size) > small_size:
        return None
    path = cache_path(dataset.samples)
    key = content_key(dataset.samples)
    decoded = load_cache(path, key)
    if decoded is None:
        decoded = _decode_files(dataset.samples, size)
        if decoded is None:
            return None
        save_cache(path, key, decoded)
    if not dataset.skip_bad_images and not bool(decoded.good.all()):
        first = int((~decoded.good).nonzero()[0])
        read_rgb(dataset.samples[first][0])  # raises the DataError that names the file and the cause
        raise DataError(f'cannot decode image {dataset.samples[first][0]!r}')
    return decoded


def _decode_files(samples: Sequence[Sample], size: Tuple[int, int]) -> Optional[DecodedImages]:
    width, height = size
    images = torch.zeros(len(samples), 3, height, width, dtype=torch.uint8)  # (N, 3, H, W)
    good = torch.ones(len(samples), dtype=torch.bool)
    for i, (path, _) in enumerate(samples):
        try:
            pixels = np.array(read_rgb(path))  # (H, W, 3)
        except DataError:
            good[i] = False
            continue
        if pixels.shape[:2] != (height, width):
            notice(f'{path!r} is {pixels.shape[1]}x{pixels.shape[0]}, not {width}x{height} as the first image: '
                   f'images of different sizes are read one by one with PIL')
            return None
        images[i] = torch.from_numpy(pixels).permute(2, 0, 1)
    labels = torch.tensor([label for _, label in samples], dtype=torch.long)
    return DecodedImages(images, labels, good)


def _hash(lines: Sequence[str]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for line in lines:
        h.update(line.encode('utf-8', 'surrogateescape'))
        h.update(b'\n')
    return h.hexdigest()


def content_key(samples: Sequence[Sample]) -> str:
    """A hash of (path, label, size, mtime) of every image and of the cache format."""
    lines = [f'format {CACHE_FORMAT}']
    for path, label in samples:
        try:
            st = os.stat(path)
        except OSError as e:
            raise DataError(f'cannot read image {path!r}: {e}') from e
        lines.append(f'{path}\t{label}\t{st.st_size}\t{st.st_mtime_ns}')
    return _hash(lines)


def cache_path(samples: Sequence[Sample]) -> Path:
    """Where the tensor of these images is cached (see the module docstring)."""
    name = '.editvit-tensors-' + _hash([f'{p}\t{label}' for p, label in samples]) + '.pt'
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser() / name
    data_dir = Path(os.path.commonpath([p for p, _ in samples])).parent  # above the class folders
    if os.access(data_dir, os.W_OK):
        return data_dir / name
    return Path('~/.cache/editvit').expanduser() / name


def _digest(decoded: DecodedImages) -> str:
    h = hashlib.blake2b(digest_size=16)
    for t in (decoded.images, decoded.labels, decoded.good):
        h.update(t.contiguous().numpy().data)
    return h.hexdigest()


def save_cache(path: Path, key: str, decoded: DecodedImages) -> None:
    record = {'format': CACHE_FORMAT, 'key': key, 'digest': _digest(decoded), 'images': decoded.images,
              'labels': decoded.labels, 'good': decoded.good}
    try:
        atomic_write(path, lambda tmp: torch.save(record, tmp))
    except OSError as e:  # a full or read-only disk costs the next run a decode, not this one its data
        notice(f'cannot write the image cache {str(path)!r} ({e}); the images will be decoded again next time')


def load_cache(path: Path, key: str) -> Optional[DecodedImages]:
    """The cached tensors if path holds them for this key; None (with a notice for a damaged file) otherwise."""
    if not path.is_file():
        return None
    try:
        record = torch.load(path, map_location='cpu', weights_only=True)
        decoded = DecodedImages(record['images'], record['labels'], record['good'])
        ok = (record['format'] == CACHE_FORMAT and decoded.images.dtype == torch.uint8 and decoded.images.ndim == 4
              and decoded.labels.dtype == torch.long and decoded.good.dtype == torch.bool
              and len(decoded.images) == len(decoded.labels) == len(decoded.good))
    except Exception as e:  # torch.load raises many kinds on a truncated or garbled file
        notice(f'the image cache {str(path)!r} is damaged ({type(e).__name__}); decoding the images again')
        return None
    if ok and record['key'] != key:
        notice(f'the images changed since {str(path)!r} was written; decoding them again')
        return None
    if not ok or record['digest'] != _digest(decoded):
        notice(f'the image cache {str(path)!r} is damaged (its contents do not match its checksum); decoding the '
               f'images again')
        return None
    return decoded
