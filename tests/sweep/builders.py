"""The shapes the sweep's fixtures are built from: images in any PIL mode, class folders, idx files, Fashion-MNIST
folders, image + mask folders, checkpoints of tiny models."""
import gzip
import shutil
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def image(path, mode='RGB', size=(32, 32), **save_args):
    """A noise image of size (W, H) in this PIL mode ('I;16' and 'F' as 16-bit and float noise)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(0)
    if mode == 'I;16':
        im = Image.fromarray(rng.randint(0, 65535, (size[1], size[0])).astype(np.uint16))
    elif mode == 'F':
        im = Image.fromarray(rng.rand(size[1], size[0]).astype(np.float32))
    else:
        im = Image.fromarray(rng.randint(0, 255, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)
    im.save(path, **save_args)


def class_folders(root, classes=('a', 'b'), n=4, splits=('train', 'val')):
    """root/<split>/<class>/<i>.png: n noise images a class."""
    for split in splits:
        for c in classes:
            for i in range(n):
                image(root / split / c / f'{i}.png')


def idx_file(path, array, magic=0x08, gz=True, cut=0):
    """An idx file of this array (gzipped as path.gz), its last `cut` bytes left off."""
    header = bytes([0, 0, magic, array.ndim]) + b''.join(struct.pack('>I', s) for s in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if cut:
        data = data[:-cut]
    if gz:
        with gzip.open(str(path) + '.gz', 'wb') as f:
            f.write(data)
    else:
        Path(path).write_bytes(data)


def fashion_mnist(root, n=20, labels=None, images_args=None, labels_args=None):
    """root/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz with n random images; *_args go to idx_file."""
    root.mkdir(parents=True)
    for split in ('train', 't10k'):
        idx_file(root / f'{split}-images-idx3-ubyte', np.random.randint(0, 255, (n, 28, 28)), **(images_args or {}))
        idx_file(root / f'{split}-labels-idx1-ubyte', labels if labels is not None else np.arange(n) % 10,
                 **(labels_args or {}))


def mask_folders(root, n=4, size=(32, 32), classes=('bg', 'fg'), mask_size=None, mask_max=1, mask_mode='L',
                 missing=False, classes_txt=True):
    """root/{images,masks}/{train,val}/<i>.png and root/classes.txt: noise images, masks of labels 0..mask_max."""
    shutil.rmtree(root, ignore_errors=True)
    for split in ('train', 'val'):
        (root / 'images' / split).mkdir(parents=True)
        (root / 'masks' / split).mkdir(parents=True)
        for i in range(n):
            pixels = np.random.randint(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / 'images' / split / f'{i}.png')
            if missing and i == 0:
                continue
            ms = mask_size or size
            mask = np.random.randint(0, mask_max + 1, (ms[1], ms[0])).astype(np.uint16 if mask_mode == 'I;16'
                                                                              else np.uint8)
            Image.fromarray(np.stack([mask] * 3, -1) if mask_mode == 'RGB' else mask).save(
                root / 'masks' / split / f'{i}.png')
    if classes_txt:
        (root / 'classes.txt').write_text('\n'.join(classes) + '\n')


def checkpoint(path, model='edit_tiny_patch16_224', **kwargs):
    """The state dict of a new timm model (img_size 32, patch 4, depth 2, 10 classes unless kwargs say otherwise),
    saved with torch.save; returns the model."""
    import timm  # here, not at the top: fixtures2.py builds no checkpoints and need not load torch
    import torch
    import editvit  # noqa: F401  registers the EDIT models
    m = timm.create_model(model, **{**dict(img_size=32, patch_size=4, depth=2, num_classes=10), **kwargs})
    torch.save(m.state_dict(), path)
    return m
