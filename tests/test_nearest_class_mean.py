"""benchmarks/nearest_class_mean.py: the classifier on tiny data sets whose answers are known by construction."""
import importlib.util
from pathlib import Path

import pytest
import torch

_spec = importlib.util.spec_from_file_location(
    'nearest_class_mean', Path(__file__).resolve().parents[1] / 'benchmarks' / 'nearest_class_mean.py')
ncm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ncm)


def test_ranks_classes_by_distance_to_the_class_mean_not_to_the_nearest_image():
    # 1-D: class 0 at 0 and 10 (mean 5), class 1 at 6.5 and 7.5 (mean 7), class 2 at 20 and 22 (mean 21)
    train_x = torch.tensor([[0.], [10.], [6.5], [7.5], [20.], [22.]], dtype=torch.float64)
    train_y = torch.tensor([0, 0, 1, 1, 2, 2])
    # 9.9 lies next to the class-0 image at 10 but nearer the class-1 mean (2.9 against 4.9)
    test_x = torch.tensor([[0.5], [9.9], [15.]], dtype=torch.float64)
    test_y = torch.tensor([0, 0, 2])
    means = ncm.class_means(train_x, train_y, 3)
    assert means.flatten().tolist() == [5., 7., 21.]
    ranking = ncm.rank_classes(test_x, means)
    assert ranking.tolist() == [[0, 1, 2], [1, 0, 2], [2, 1, 0]]
    assert ncm.topk_accuracy(ranking, test_y, 1) == pytest.approx(200 / 3)
    assert ncm.topk_accuracy(ranking, test_y, 2) == 100.0
    assert ncm.nearest_class_mean(train_x, train_y, test_x, test_y, 3) == (pytest.approx(200 / 3), 100.0)


def test_standardising_stops_a_wide_pixel_from_deciding_and_ignores_a_constant_one():
    # pixel 0 separates the classes on a scale of 1, pixel 1 on a scale of 10, pixel 2 is 5 in every training image
    train_x = torch.tensor([[0., 0., 5.], [.2, 0., 5.], [1., 10., 5.], [.8, 10., 5.]], dtype=torch.float64)
    train_y = torch.tensor([0, 0, 1, 1])
    test_x = torch.tensor([[.1, 6., 7.]], dtype=torch.float64)
    test_y = torch.tensor([0])
    # raw: distances 6.3 (class 0) and 4.5 (class 1), pixel 1 decides
    assert ncm.nearest_class_mean(train_x, train_y, test_x, test_y, 2)[0] == 0.0
    train_s, test_s = ncm.standardise(train_x, test_x)
    assert train_s[:, :2].mean(dim=0).abs().max() < 1e-12
    assert train_s[:, :2].std(dim=0).tolist() == pytest.approx([1., 1.])
    assert test_s[0, 2] == 2.0  # the constant pixel: centred, not divided by its zero std
    # standardised: distances 2.25 (class 0) and 2.70 (class 1); the constant pixel adds 2 ** 2 to both squares
    assert ncm.nearest_class_mean(train_s, train_y, test_s, test_y, 2)[0] == 100.0
