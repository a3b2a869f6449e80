"""Segmentation data: the ADE20K release layout, the generic mask-folder layout, the synthetic set, the transforms."""
import random

import numpy as np
import pytest
import torch
from PIL import Image

from editvit.data import DataError
from editvit.data.sampler import ShardSampler
from editvit.segmentation import (IGNORE_INDEX, SegmentationEvalTransform, SegmentationTrainTransform,
                                  SyntheticSegmentation, create_segmentation_dataset, create_segmentation_loader)
from editvit.segmentation.ade20k import CLASSES
from editvit.segmentation.transforms import fit_scale, photometric_distortion, random_crop

MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


def _write_pair(images, masks, name, labels, size=(12, 16)):
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(images / f'{name}.jpg')
    Image.fromarray(labels.astype(np.uint8), 'L').save(masks / f'{name}.png')


def test_ade20k_release_layout_ignores_raw_zero_and_shifts_classes(tmp_path):
    base = tmp_path / 'ADEChallengeData2016'
    raw = np.zeros((12, 16), dtype=np.uint8)
    raw[:, 4:8], raw[:, 8:] = 1, 150
    for split, folder in (('train', 'training'), ('val', 'validation')):
        _write_pair(base / 'images' / folder, base / 'annotations' / folder, f'ADE_{split}_00000001', raw)
    for root in (tmp_path, base):  # the folder holding ADEChallengeData2016, or the release folder itself
        data = create_segmentation_dataset('ade20k', str(root), 'val')
        image, labels = data[0]
        assert len(data) == 1 and len(data.classes) == 150 and data.classes[0] == 'wall'
        assert image.size == (16, 12)
        assert (labels[:, :4] == IGNORE_INDEX).all()
        assert (labels[:, 4:8] == 0).all() and (labels[:, 8:] == 149).all()
    assert len(CLASSES) == len(set(CLASSES)) == 150


def test_ade20k_wrong_layout_is_named(tmp_path):
    with pytest.raises(DataError, match='not an ADE20K release: expected ADEChallengeData2016/images'):
        create_segmentation_dataset('ade20k', str(tmp_path), 'train')


def test_mask_folder_layout_with_class_names(tmp_path):
    (tmp_path / 'classes.txt').write_text('road\ncar\n\n')
    labels = np.zeros((12, 16), dtype=np.uint8)
    labels[6:] = 1
    labels[0, 0] = IGNORE_INDEX
    _write_pair(tmp_path / 'images' / 'train', tmp_path / 'masks' / 'train', 'a', labels)
    data = create_segmentation_dataset('maskfolder', str(tmp_path), 'train')
    assert data.classes == ['road', 'car']
    assert np.array_equal(data[0][1], labels)
    Image.new('RGB', (16, 12)).save(tmp_path / 'images' / 'train' / 'b.jpg')
    with pytest.raises(DataError, match="has no mask .*b.png"):
        create_segmentation_dataset('maskfolder', str(tmp_path), 'train')
    with pytest.raises(DataError, match='lacks images/val/ or masks/val/'):
        create_segmentation_dataset('maskfolder', str(tmp_path), 'val')
    labels[0, 1] = 2  # only classes 0 and 1 are named
    _write_pair(tmp_path / 'images' / 'val', tmp_path / 'masks' / 'val', 'c', labels)
    with pytest.raises(DataError, match=r"c.png' holds labels \[2\] outside 0..1 \(and 255"):
        create_segmentation_dataset('maskfolder', str(tmp_path), 'val')[0]


def test_synthetic_set_is_deterministic_and_labels_its_objects():
    a, b = SyntheticSegmentation(8, 4, 32, seed=3), SyntheticSegmentation(8, 4, 32, seed=3)
    for i in range(8):
        assert np.array_equal(np.asarray(a[i][0]), np.asarray(b[i][0])) and np.array_equal(a[i][1], b[i][1])
    labels = np.stack([a[i][1] for i in range(8)])
    assert set(np.unique(labels)) <= {0, 1, 2, 3} and (labels > 0).any() and (labels == 0).any()
    val = SyntheticSegmentation(8, 4, 32, seed=3, split='val')
    assert not np.array_equal(val[0][1], a[0][1])
    # an object's pixels carry its class colour: mean colours of two classes differ clearly
    image, lab = a[0]
    x = np.asarray(image, dtype=np.float32)
    assert np.abs(x[lab == 0].mean(0) - x[lab == lab.max()].mean(0)).max() > 20


def test_train_transform_crops_pads_with_ignore_and_is_seeded():
    image = Image.fromarray(np.full((20, 24, 3), 128, dtype=np.uint8))
    labels = np.ones((20, 24), dtype=np.uint8)
    tf = SegmentationTrainTransform(32, MEAN, STD, scale=(128, 20), ratio_range=(1.0, 1.0), photometric=False)
    x, y = tf((image, labels))
    assert x.shape == (3, 32, 32) and y.shape == (32, 32) and y.dtype == torch.long
    assert (y[:20, :24] == 1).all() and (y[20:] == IGNORE_INDEX).all() and (y[:, 24:] == IGNORE_INDEX).all()
    assert (x[:, 20:] == 0).all()  # padded with 0 in the normalised image
    tf = SegmentationTrainTransform(16, MEAN, STD, scale=(128, 20), ratio_range=(0.5, 2.0))
    rich = np.random.default_rng(0).integers(0, 3, (20, 24)).astype(np.uint8)
    random.seed(5)
    first = tf((image, rich))
    random.seed(5)
    second = tf((image, rich))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_random_crop_avoids_crops_dominated_by_one_class():
    labels = np.zeros((10, 100), dtype=np.uint8)
    labels[:, 90:] = 1
    image = Image.new('RGB', (100, 10))
    random.seed(0)

    def balanced(ratio):  # share of 200 crops where no class covers 75% or more
        crops = [random_crop(image, labels, 20, cat_max_ratio=ratio)[1] for _ in range(200)]
        return np.mean([np.bincount(c.ravel()).max() / c.size < 0.75 for c in crops])

    # one crop in 16 is balanced; with up to 10 tries about half are (1 - (15/16)^10 = 0.48)
    assert balanced(1.0) < 0.15
    assert balanced(0.75) > 0.35


def test_fit_scale_and_eval_transform_keep_labels_at_full_size():
    assert fit_scale((300, 400), 2048, 512) == (512, 683)
    assert fit_scale((100, 3000), 2048, 512) == (68, 2048)
    image = Image.new('RGB', (40, 30))
    x, y = SegmentationEvalTransform(MEAN, STD, scale=(128, 60))((image, np.zeros((30, 40), np.uint8)))
    assert x.shape == (3, 60, 80) and y.shape == (30, 40)


def test_photometric_distortion_changes_colours_but_not_size():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8))
    random.seed(1)
    outs = [np.asarray(photometric_distortion(image)) for _ in range(4)]
    assert all(o.shape == (8, 8, 3) for o in outs)
    assert any(not np.array_equal(o, np.asarray(image)) for o in outs)


def test_loader_batches_images_and_label_maps():
    data = SyntheticSegmentation(6, 3, 16)
    loader = create_segmentation_loader(data, SegmentationEvalTransform(MEAN, STD, scale=(64, 16)),
                                        ShardSampler(len(data)), batch_size=4)
    images, labels, skipped = next(iter(loader))
    assert images.shape == (4, 3, 16, 16) and labels.shape == (4, 16, 16) and skipped == 0
    assert torch.equal(labels[1], torch.from_numpy(data[1][1].astype(np.int64)))


def test_comparison_picture_shows_truth_and_prediction_in_class_colours():
    from editvit.segmentation import comparison, overlay
    from editvit.segmentation.pictures import palette
    colours = palette(3)
    image = Image.fromarray(np.zeros((4, 4, 3), np.uint8))
    truth = np.full((4, 4), 2, np.uint8)
    truth[0, 0] = IGNORE_INDEX
    over = np.asarray(overlay(image, truth, colours, alpha=0.5))
    assert np.array_equal(over[0, 0], [0, 0, 0])  # ignored pixels are left as they are
    assert np.array_equal(over[1, 1], (colours[2] * 0.5).astype(np.uint8))
    pred = np.ones((4, 4), np.uint8)
    picture = np.asarray(comparison(image, truth, pred, colours, gap=2, min_width=8))  # panels enlarged 2x
    assert picture.shape == (12 + 8, 3 * 8 + 2 * 2, 3)
    assert np.array_equal(picture[12 + 3, 8 + 2 + 3], over[1, 1])
    assert np.array_equal(picture[12 + 3, 2 * (8 + 2) + 3], (colours[1] * 0.5).astype(np.uint8))


class _Items(torch.utils.data.Dataset):
    """Two classification 'items': a bright 10x10 square (class 0) or bar (class 1) on black, as Fashion-MNIST."""
    classes = ['square', 'bar']

    def __len__(self):
        return 2

    def __getitem__(self, i):
        x = np.zeros((20, 20), np.uint8)
        if i == 0:
            x[5:15, 5:15] = 255
        else:
            x[:, 8:12] = 255
        return Image.fromarray(x).convert('RGB'), i


def test_pasted_objects_take_their_pixel_masks_and_class_plus_one():
    from editvit.segmentation import PastedObjects
    data = PastedObjects(_Items(), 16, 40, seed=1, max_objects=1, scale=(0.5, 0.5), noise=0.)
    assert data.classes == ['background', 'square', 'bar']
    for i in range(16):
        image, labels = data[i]
        present = set(np.unique(labels)) - {0}
        assert len(present) == 1
        area = (labels > 0).sum()
        # a 20-pixel object: the square covers its middle half (about 100 pixels), the bar a fifth (about 80)
        assert (90 <= area <= 110) if present == {1} else (70 <= area <= 90)
    again = PastedObjects(_Items(), 16, 40, seed=1, max_objects=1, scale=(0.5, 0.5), noise=0.)
    assert np.array_equal(np.asarray(again[3][0]), np.asarray(data[3][0]))


def test_pasted_set_from_an_image_folder_pastes_whole_squares(tmp_path):
    for split in ('train', 'val'):
        for name, colour in (('cat', 200), ('dog', 90)):
            (tmp_path / split / name).mkdir(parents=True)
            Image.new('RGB', (8, 8), (colour,) * 3).save(tmp_path / split / name / 'a.png')
    data = create_segmentation_dataset('pasted', str(tmp_path), 'val', image_size=32, synthetic_samples=40,
                                       objects_dataset='imagefolder')
    assert len(data) == 10 and data.classes == ['background', 'cat', 'dog']
    _, labels = data[0]
    ys, xs = np.nonzero(labels == labels.max())
    assert labels.max() in (1, 2) and (ys.max() - ys.min() + 1) >= 14  # at least one 0.45 x 32 square
