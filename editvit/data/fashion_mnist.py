"""Fashion-MNIST from its idx files (gzip-compressed or not), grey scale repeated to three channels."""
import gzip
import zlib
from pathlib import Path
from typing import Tuple

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from ..errors import DataError

CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot')
_FILES = {'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
          'val': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')}
LAYOUT = ('train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], '
          't10k-labels-idx1-ubyte[.gz]')


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file: 2 zero bytes, a type byte (0x08 = uint8), the number of dimensions, big-endian uint32
    sizes, then the data."""
    opener = gzip.open if path.suffix == '.gz' else open
    try:
        with opener(path, 'rb') as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:  # EOFError, zlib.error: a cut or damaged .gz
        raise DataError(f'cannot read idx file {str(path)!r}: {e}') from e
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f'{str(path)!r} is not a uint8 idx file (header {data[:4].hex()!r})')
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], 'big') for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(shape)):
        raise DataError(f'{str(path)!r} is truncated: header says {shape}, file holds {len(data) - offset} bytes')
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def _find(root: Path, stem: str) -> Path:
    for name in (stem + '.gz', stem):
        if (root / name).is_file():
            return root / name
    raise DataError(f'Fashion-MNIST file {stem}[.gz] not found in {str(root)!r}; expected {LAYOUT}')


class FashionMNIST(Dataset):
    """Fashion-MNIST (Xiao et al. 2017): 28x28 grey images as 3-channel PIL images, 10 classes."""

    classes = list(CLASSES)

    def __init__(self, root: Path, split: str = 'train') -> None:
        images_file, labels_file = (_find(Path(root), stem) for stem in _FILES[split])
        self.images = read_idx(images_file)  # (N, 28, 28)
        self.labels = read_idx(labels_file)  # (N,)
        if self.images.ndim != 3 or self.labels.ndim != 1 or len(self.images) != len(self.labels):
            raise DataError(f'{str(images_file)!r} ({self.images.shape}) and {str(labels_file)!r} '
                            f'({self.labels.shape}) do not form an image set')
        if len(self.labels) and self.labels.max() >= len(CLASSES):
            raise DataError(f'{str(labels_file)!r} holds label {int(self.labels.max())}; Fashion-MNIST labels are '
                            f'0..{len(CLASSES) - 1}')

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> Tuple[Image.Image, int]:
        return Image.fromarray(self.images[index], 'L').convert('RGB'), int(self.labels[index])
