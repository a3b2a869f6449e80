"""Data sets by name, seeded augmentation, resumable samplers, and clear errors for missing or broken data."""
import gzip
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from editvit.data import (DataError, ResumableSampler, ShardSampler, TransformedDataset, create_dataset,
                          create_loader, create_train_sampler, create_train_transform, sample_seed)
from editvit.data.fashion_mnist import read_idx


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b''.join(int(d).to_bytes(4, 'big') for d in array.shape)
    with gzip.open(path, 'wb') as f:
        f.write(header + array.astype(np.uint8).tobytes())


def _image_folder(root: Path, split: str, classes=('cat', 'dog', 'frog'), per_class=4, size=8) -> None:
    rng = np.random.default_rng(0)
    for c in classes:
        (root / split / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / split / c / f'{i}.jpg')


def test_fashion_mnist_idx_files_become_three_channel_images(tmp_path):
    images = np.arange(5 * 28 * 28).reshape(5, 28, 28) % 256
    _write_idx(tmp_path / 't10k-images-idx3-ubyte.gz', images)
    _write_idx(tmp_path / 't10k-labels-idx1-ubyte.gz', np.array([9, 0, 3, 3, 1]))
    data = create_dataset('fashion-mnist', str(tmp_path), 'val')
    image, label = data[2]
    assert len(data) == 5 and label == 3 and data.classes[9] == 'Ankle boot'
    pixels = np.asarray(image)
    assert pixels.shape == (28, 28, 3)
    assert (pixels == images[2][..., None]).all()  # grey value repeated on the three channels


def test_a_truncated_idx_file_is_named(tmp_path):
    path = tmp_path / 'x-idx3-ubyte.gz'
    _write_idx(path, np.zeros((2, 4, 4)))
    data = gzip.open(path).read()[:-3]
    with gzip.open(path, 'wb') as f:
        f.write(data)
    with pytest.raises(DataError, match=r"x-idx3-ubyte.gz' is truncated: header says \(2, 4, 4\)"):
        read_idx(path)


def test_real_fashion_mnist_from_the_environment():
    base = os.environ.get('EDITVIT_DATA')
    if not base or not (Path(base) / 'fashion-mnist').is_dir():
        pytest.skip('set EDITVIT_DATA to a folder holding fashion-mnist/ to check the real files')
    train, val = (create_dataset('fashion-mnist', None, s) for s in ('train', 'val'))
    assert (len(train), len(val)) == (60000, 10000)
    assert val[0][0].size == (28, 28) and val[0][1] == 9  # the first test image is an ankle boot


def test_cifar_as_jpeg_class_folders(tmp_path):
    _image_folder(tmp_path, 'train', per_class=3)
    _image_folder(tmp_path, 'test', per_class=2)
    train, val = (create_dataset('cifar10', str(tmp_path), s) for s in ('train', 'val'))
    assert train.classes == val.classes == ['cat', 'dog', 'frog']
    assert (len(train), len(val)) == (9, 6)
    image, label = val[5]
    assert image.mode == 'RGB' and image.size == (8, 8) and label == 2


def test_data_location_from_environment_variable(tmp_path, monkeypatch):
    _image_folder(tmp_path / 'cifar100', 'train', per_class=1)
    monkeypatch.setenv('EDITVIT_DATA', str(tmp_path))
    assert len(create_dataset('cifar100', None, 'train')) == 3
    monkeypatch.delenv('EDITVIT_DATA')
    with pytest.raises(DataError, match='pass --data-dir PATH or set EDITVIT_DATA'):
        create_dataset('cifar100', None, 'train')


def test_validation_split_carved_per_class(tmp_path):
    _image_folder(tmp_path, 'train', per_class=5)
    with pytest.raises(DataError, match='has no val/, validation/ or test/ folder.*--val-split-per-class'):
        create_dataset('imagefolder', str(tmp_path), 'val')
    train = create_dataset('imagefolder', str(tmp_path), 'train', val_split_per_class=2, seed=1)
    val = create_dataset('imagefolder', str(tmp_path), 'val', val_split_per_class=2, seed=1)
    assert (len(train), len(val)) == (9, 6)
    assert not set(train.samples) & set(val.samples)
    assert [s[1] for s in val.samples] == [0, 0, 1, 1, 2, 2]  # two per class
    again = create_dataset('imagefolder', str(tmp_path), 'val', val_split_per_class=2, seed=1)
    assert again.samples == val.samples  # the same split every time for a seed


def test_missing_directory_names_path_and_layout(tmp_path):
    with pytest.raises(DataError, match=r"data directory '.*nowhere' for 'imagefolder' does not exist; expected "
                                        r"ROOT/train/<class>/<image>"):
        create_dataset('imagefolder', str(tmp_path / 'nowhere'), 'train')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(DataError, match=r"holds neither cifar-10-batches-py/ \(torchvision format\) nor JPEG"):
        create_dataset('cifar10', str(tmp_path / 'empty'), 'train')
    with pytest.raises(DataError, match="unknown dataset 'mnist'; choose one of imagefolder, cifar10"):
        create_dataset('mnist', str(tmp_path), 'train')


def test_undecodable_image_is_named_or_skipped_and_counted(tmp_path):
    _image_folder(tmp_path, 'train', per_class=2)
    bad = tmp_path / 'train' / 'dog' / 'broken.jpg'
    bad.write_bytes(b'not a jpeg at all')
    data = create_dataset('imagefolder', str(tmp_path), 'train')
    transform = create_train_transform((8, 8), (0.5,) * 3, (0.5,) * 3)
    loader = create_loader(data, transform, ShardSampler(len(data)), batch_size=7)
    with pytest.raises(DataError, match=r"cannot decode image '.*broken.jpg'"):
        list(loader)
    data = create_dataset('imagefolder', str(tmp_path), 'train', skip_bad_images=True)
    batches = list(create_loader(data, transform, ShardSampler(len(data)), batch_size=7))
    assert [(len(labels), skipped) for _, labels, skipped in batches] == [(6, 1)]


def test_synthetic_set_is_deterministic_and_balanced():
    a = create_dataset('synthetic', None, 'train', num_classes=3, image_size=16, synthetic_samples=12, seed=5)
    b = create_dataset('synthetic', None, 'train', num_classes=3, image_size=16, synthetic_samples=12, seed=5)
    c = create_dataset('synthetic', None, 'train', num_classes=3, image_size=16, synthetic_samples=12, seed=6)
    assert np.array_equal(np.asarray(a[4][0]), np.asarray(b[4][0]))
    assert not np.array_equal(np.asarray(a[4][0]), np.asarray(c[4][0]))
    assert [a[i][1] for i in range(6)] == [0, 1, 2, 0, 1, 2]
    assert len(create_dataset('synthetic', None, 'val', num_classes=3, synthetic_samples=12)) == 3


def test_seeded_augmentation_ignores_and_keeps_the_global_rng():
    data = create_dataset('synthetic', None, 'train', num_classes=2, image_size=16, synthetic_samples=4)
    augmented = TransformedDataset(data, create_train_transform((16, 16), (0.5,) * 3, (0.5,) * 3))
    torch.manual_seed(1), random.seed(1)
    first = augmented[(3, 1234)][0]
    torch.manual_seed(2), random.seed(2)
    before = torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()
    second = augmented[(3, 1234)][0]
    assert torch.equal(first, second)  # the image's own seed decides its augmentation
    assert torch.equal(before[0], torch.get_rng_state()) and before[1] == random.getstate()
    assert np.array_equal(before[2], np.random.get_state()[1])
    assert not torch.equal(first, augmented[(3, 4321)][0])


def test_resumable_sampler_continues_mid_epoch_and_shards_ranks():
    data = create_dataset('synthetic', None, 'train', num_classes=2, synthetic_samples=20)
    sampler = create_train_sampler(data, seed=3)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.set_epoch(2, start=7)
    assert list(sampler) == full[7:] and len(sampler) == 13
    assert full[7][1] == sample_seed(3, 2, 0, 7)
    sampler.set_epoch(3)
    assert [i for i, _ in sampler] != [i for i, _ in full]  # a new order each epoch
    ranks = [create_train_sampler(data, seed=3, rank=r, world_size=2) for r in (0, 1)]
    for s in ranks:
        s.set_epoch(0)
    shares = [{i for i, _ in s} for s in ranks]
    assert not shares[0] & shares[1] and len(shares[0] | shares[1]) == 20
    repeated = create_train_sampler(data, seed=3, repeated_aug=True)
    repeated.set_epoch(0)
    assert isinstance(repeated, ResumableSampler) and len(repeated) == 20  # 3 repeats, cut to one epoch's worth


def test_loader_workers_do_not_change_the_images():
    data = create_dataset('synthetic', None, 'train', num_classes=2, image_size=16, synthetic_samples=16)
    transform = create_train_transform((16, 16), (0.5,) * 3, (0.5,) * 3)
    outs = []
    for workers in (0, 2):
        sampler = create_train_sampler(data, seed=0)
        sampler.set_epoch(1)
        outs.append(torch.cat([x for x, _, _ in create_loader(data, transform, sampler, 4, num_workers=workers)]))
    assert torch.equal(outs[0], outs[1])


def test_cifar_in_torchvision_format(tmp_path, monkeypatch):
    import pickle

    from torchvision.datasets import CIFAR10, cifar
    monkeypatch.setattr(CIFAR10, '_check_integrity', lambda self: True)  # the files below have no official md5
    monkeypatch.setattr(cifar, 'check_integrity', lambda path, md5=None: os.path.isfile(path))
    batches = tmp_path / 'cifar-10-batches-py'
    batches.mkdir()
    rng = np.random.default_rng(0)
    for name in [f'data_batch_{i}' for i in range(1, 6)] + ['test_batch']:
        with open(batches / name, 'wb') as f:
            pickle.dump({'data': rng.integers(0, 255, (2, 3072), dtype=np.uint8), 'labels': [1, 7]}, f)
    with open(batches / 'batches.meta', 'wb') as f:
        pickle.dump({'label_names': [f'c{i}' for i in range(10)]}, f)
    train = create_dataset('cifar10', str(tmp_path), 'train')
    val = create_dataset('cifar10', str(batches), 'val')  # the batches folder itself works too
    assert (len(train), len(val)) == (10, 2) and train.classes[7] == 'c7'
    image, label = val[1]
    assert image.size == (32, 32) and label == 7


@pytest.mark.parametrize('image_size', [32, 28, 7])
def test_the_synthetic_set_costs_memory_per_class_not_per_pixel_and_keeps_its_images(image_size):
    from editvit.data.synthetic import SyntheticDataset
    data = SyntheticDataset(16, 100_000, image_size, seed=3)  # 100,000 classes: 1.2 GB and 30 s when upsampled at once
    arrays = [v for v in vars(data).values() if isinstance(v, np.ndarray)]
    assert sum(a.nbytes for a in arrays) <= 100_000 * 16 * 3 * 4 + image_size ** 2 * 8
    # the images as before: each class's 4x4 prototype upsampled (nearest), plus noise from (seed, split, index)
    g = torch.Generator().manual_seed(3)
    protos = torch.randint(0, 256, (100_000, 3, 4, 4), generator=g).float()[:16]  # (16, 3, 4, 4)
    protos = torch.nn.functional.interpolate(protos, size=(image_size, image_size), mode='nearest')  # (16, 3, S, S)
    for index in (0, 5, 15):
        noise = np.random.default_rng([3, 0, index]).normal(0., 40., (image_size, image_size, 3))  # (S, S, 3)
        expected = np.clip(protos[index].permute(1, 2, 0).numpy() + noise, 0, 255).astype(np.uint8)
        image, label = data[index]
        assert label == index and np.array_equal(np.asarray(image), expected)
