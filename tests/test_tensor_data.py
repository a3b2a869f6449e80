"""The tensor path for small images: decode once (cached by content), augment whole batches with per-image random
parameters drawn from (seed, epoch, rank, position), resume at any batch boundary."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from editvit.data import AugmentOptions, create_dataset, create_train_sampler
from editvit.data.batch_augment import BatchAugment
from editvit.data.decoded import cache_path, decode_dataset
from editvit.errors import ConfigError, DataError
from editvit.data.tensor_loader import create_train_batches

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def _folder(root: Path, per_class: int = 6, size: int = 16, classes=('cat', 'dog')) -> Path:
    rng = np.random.default_rng(0)
    for split in ('train', 'val'):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / c / f'{i}.png')
    return root


def _batches(dataset, batch_size=4, seed=0, rank=0, world_size=1, **kwargs):
    sampler = create_train_sampler(dataset, seed, rank, world_size)
    options = AugmentOptions(crop='src', hflip=0.5, three_augment=True, color_jitter=0.3)
    return create_train_batches(dataset, sampler, batch_size, (16, 16), MEAN, STD, options, **kwargs)


def _epoch(batches, epoch, start=0):
    batches.set_epoch(epoch, start=start)
    return list(batches)


def test_decode_equals_pil_decode_of_the_same_files(tmp_path, one_thread):
    data = create_dataset('imagefolder', str(_folder(tmp_path)), 'train')
    decoded = decode_dataset(data)
    assert decoded.images.shape == (12, 3, 16, 16) and decoded.images.dtype == torch.uint8
    for i, (path, label) in enumerate(data.samples):
        pil = np.asarray(Image.open(path).convert('RGB'))  # (H, W, 3)
        assert (decoded.images[i].permute(1, 2, 0).numpy() == pil).all()
        assert decoded.labels[i] == label
    # the second decode reads the cache, and gives the same tensor
    assert cache_path(data.samples).is_file()
    assert torch.equal(decode_dataset(data).images, decoded.images)


def test_fashion_mnist_grey_is_repeated_like_pil(tmp_path):
    import gzip
    images = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256
    for stem, array in (('t10k-images-idx3-ubyte', images), ('t10k-labels-idx1-ubyte', np.array([4, 0, 7]))):
        header = bytes([0, 0, 0x08, array.ndim]) + b''.join(int(d).to_bytes(4, 'big') for d in array.shape)
        with gzip.open(tmp_path / f'{stem}.gz', 'wb') as f:
            f.write(header + array.astype(np.uint8).tobytes())
    data = create_dataset('fashion-mnist', str(tmp_path), 'val')
    decoded = decode_dataset(data)
    assert decoded.images.shape == (3, 3, 28, 28) and decoded.labels.tolist() == [4, 0, 7]
    assert (decoded.images[1].permute(1, 2, 0).numpy() == np.asarray(data[1][0])).all()


def test_large_images_stay_on_the_pil_path_unless_forced(tmp_path, one_thread):
    data = create_dataset('imagefolder', str(_folder(tmp_path, per_class=2, size=80)), 'train')
    sampler = create_train_sampler(data, 0)
    assert create_train_batches(data, sampler, 2, (16, 16), MEAN, STD) is None  # auto: 80 px is not small
    assert create_train_batches(data, sampler, 2, (16, 16), MEAN, STD, data_path='pil') is None
    assert create_train_batches(data, sampler, 2, (16, 16), MEAN, STD, data_path='tensor') is not None
    with pytest.raises(ConfigError, match="data_path must be one of auto, tensor, pil, got 'fast'"):
        create_train_batches(data, sampler, 2, (16, 16), MEAN, STD, data_path='fast')


def test_batches_have_the_right_shape_dtype_order_and_normalisation(tmp_path, one_thread):
    data = create_dataset('imagefolder', str(_folder(tmp_path)), 'train')
    batches = _batches(data)
    sampler = batches.sampler
    assert len(batches) == 3
    out = _epoch(batches, 1)
    assert len(out) == 3
    images, labels, bad = out[0]
    assert images.shape == (4, 3, 16, 16) and images.dtype == torch.float32 and labels.dtype == torch.long
    assert bad == 0
    order = [index for index, _ in sampler]  # the ResumableSampler's order, as the PIL path reads it
    assert torch.cat([y for _, y, _ in out]).tolist() == [data.samples[i][1] for i in order]
    # a constant image, cropped and flipped, is that constant, normalised with the mean and std
    augment = BatchAugment((16, 16), MEAN, STD, AugmentOptions(crop='rrc', three_augment=False, color_jitter=None))
    grey = torch.full((2, 3, 16, 16), 51, dtype=torch.uint8)  # 51 / 255 = 0.2
    expected = (0.2 - torch.tensor(MEAN)) / torch.tensor(STD)  # (3,)
    assert torch.allclose(augment(grey), expected.view(1, 3, 1, 1).expand(2, 3, 16, 16), atol=1e-5)


def test_each_image_of_a_batch_gets_its_own_augmentation(one_thread):
    image = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (3, 16, 16), dtype=np.uint8))
    batch = image.expand(16, -1, -1, -1)  # (16, 3, 16, 16): one image sixteen times
    torch.manual_seed(0)
    out = BatchAugment((16, 16), MEAN, STD, AugmentOptions(crop='src'))(batch)  # (16, 3, 16, 16)
    distinct = {tuple(x.flatten()[:64].round(decimals=4).tolist()) for x in out}
    assert len(distinct) == 16


def test_augmentation_is_a_function_of_seed_epoch_rank_and_position(tmp_path, one_thread):
    data = create_dataset('imagefolder', str(_folder(tmp_path)), 'train')
    first = _epoch(_batches(data), 2)
    torch.manual_seed(123)  # what happened to the global RNG before does not matter...
    again = _epoch(_batches(data), 2)
    for (x1, y1, _), (x2, y2, _) in zip(first, again):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    state = torch.get_rng_state()
    _epoch(_batches(data), 2)
    assert torch.equal(torch.get_rng_state(), state)  # ...and the loader leaves it as it was
    other_epoch = _epoch(_batches(data), 3)
    other_seed = _epoch(_batches(data, seed=1), 2)
    other_rank = _epoch(_batches(data, rank=1, world_size=2), 2)
    assert not torch.equal(first[0][0], other_epoch[0][0])
    assert not torch.equal(first[0][0], other_seed[0][0])
    assert not torch.equal(first[0][0], other_rank[0][0])


def test_resuming_at_a_batch_boundary_gives_the_same_remaining_batches(tmp_path, one_thread):
    data = create_dataset('imagefolder', str(_folder(tmp_path)), 'train')
    whole = _epoch(_batches(data), 4)
    resumed = _batches(data)  # a new process: new loader, new global RNG state
    torch.manual_seed(999)
    rest = _epoch(resumed, 4, start=2 * 4)
    assert len(resumed) == 1 and len(rest) == 1
    assert torch.equal(rest[0][0], whole[2][0]) and torch.equal(rest[0][1], whole[2][1])


def test_cache_is_rebuilt_when_an_image_changes(tmp_path, one_thread, capsys):
    root = _folder(tmp_path)
    data = create_dataset('imagefolder', str(root), 'train')
    before = decode_dataset(data)
    path, _ = data.samples[3]
    Image.fromarray(np.full((16, 16, 3), 7, dtype=np.uint8)).save(path)
    os.utime(path, ns=(1, 1))  # a changed mtime even on file systems with coarse timestamps
    after = decode_dataset(create_dataset('imagefolder', str(root), 'train'))
    assert 'the images changed' in capsys.readouterr().err
    assert (after.images[3] == 7).all() and not torch.equal(after.images[3], before.images[3])
    assert torch.equal(after.images[:3], before.images[:3])


@pytest.mark.parametrize('damage', ['truncate', 'flip_bytes', 'garbage'])
def test_a_damaged_cache_is_rebuilt_never_used(tmp_path, one_thread, capsys, damage):
    data = create_dataset('imagefolder', str(_folder(tmp_path)), 'train')
    good = decode_dataset(data).images.clone()
    cache = cache_path(data.samples)
    raw = bytearray(cache.read_bytes())
    if damage == 'truncate':
        raw = raw[:len(raw) // 2]
    elif damage == 'flip_bytes':  # inside the pixel data, which torch.load itself does not check
        pixels = good.numpy().tobytes()
        at = raw.find(pixels[:64])
        assert at > 0
        raw[at:at + 64] = bytes(255 - b for b in raw[at:at + 64])
    else:
        raw = bytearray(b'not a cache')
    cache.write_bytes(bytes(raw))
    again = decode_dataset(data)
    assert 'is damaged' in capsys.readouterr().err
    assert torch.equal(again.images, good)
    assert torch.equal(decode_dataset(data).images, good)  # rewritten: read without a notice
    assert capsys.readouterr().err == ''


def test_undecodable_images_fail_or_are_dropped_and_counted(tmp_path, one_thread):
    root = _folder(tmp_path, per_class=4)
    (root / 'train' / 'cat' / '1.png').write_bytes(b'not an image')
    with pytest.raises(DataError, match=r"cannot decode image .*1\.png"):
        decode_dataset(create_dataset('imagefolder', str(root), 'train'))
    data = create_dataset('imagefolder', str(root), 'train', skip_bad_images=True)
    batches = _batches(data, batch_size=8)
    (images, labels, bad), = _epoch(batches, 0)
    assert bad == 1 and len(images) == len(labels) == 7


def test_cache_goes_to_editvit_cache_when_set(tmp_path, one_thread, monkeypatch):
    monkeypatch.setenv('EDITVIT_CACHE', str(tmp_path / 'cache'))
    data = create_dataset('imagefolder', str(_folder(tmp_path / 'data')), 'train')
    decode_dataset(data)
    assert [p.parent for p in (tmp_path / 'cache').glob('.editvit-tensors-*.pt')] == [tmp_path / 'cache']
    assert not list((tmp_path / 'data').glob('.editvit-*'))


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a GPU')
def test_batches_are_augmented_on_the_training_device(tmp_path):
    data = create_dataset('imagefolder', str(_folder(tmp_path)), 'train')
    on_gpu = _epoch(_batches(data, device=torch.device('cuda')), 0)
    again = _epoch(_batches(data, device=torch.device('cuda')), 0)
    images, labels, _ = on_gpu[0]
    assert images.is_cuda and labels.is_cuda and images.shape == (4, 3, 16, 16)
    assert torch.equal(images, again[0][0])
