"""mIoU the standard way: areas summed over the whole set, ignore pixels excluded, absent classes left out."""
import math

import pytest
import torch

from editvit.segmentation import IGNORE_INDEX, IoUAccumulator, iou_table, segmentation_metrics


def test_miou_equals_hand_computed_value_with_ignored_pixels():
    meter = IoUAccumulator(num_classes=3)
    pred = torch.tensor([[0, 0, 1], [1, 2, 2]])
    target = torch.tensor([[0, 1, 1], [IGNORE_INDEX, 2, 0]])  # the ignored pixel is predicted 1: it must not count
    meter.update(pred, target)
    m = meter.compute()
    # class 0: I 1, U 2+2-1 = 3; class 1: I 1, U 1+2-1 = 2; class 2: I 1, U 2+1-1 = 2
    assert m['per_class_iou'] == pytest.approx([100 / 3, 50., 50.], abs=1e-4)
    assert m['mIoU'] == pytest.approx(100 * 4 / 9)
    assert m['pixel_acc'] == pytest.approx(60.)  # 3 of 5 labelled pixels
    assert m['mAcc'] == pytest.approx(100 * (1 / 2 + 1 / 2 + 1) / 3)


def test_areas_are_summed_over_the_set_not_averaged_per_image_and_absent_classes_are_left_out():
    meter = IoUAccumulator(num_classes=4)  # class 3 appears nowhere
    meter.update(torch.tensor([[0, 0, 1], [1, 2, 2]]), torch.tensor([[0, 1, 1], [IGNORE_INDEX, 2, 0]]))
    meter.update(torch.tensor([[1, 1, 1, 1]]).view(1, 4), torch.tensor([[1, 0, 0, 0]]))
    m = meter.compute()
    # summed: class 0 I 1, U 6; class 1 I 2, U 5+3-2 = 6; class 2 I 1, U 2
    assert m['per_class_iou'][:3] == pytest.approx([100 / 6, 100 / 3, 50.], abs=1e-4)
    assert m['per_class_iou'][3] is None
    assert m['classes_present'] == 3
    assert m['mIoU'] == pytest.approx(100 / 3)
    assert m['pixel_acc'] == pytest.approx(100 * 4 / 9)


def test_a_class_only_predicted_counts_with_iou_zero():
    meter = IoUAccumulator(num_classes=2)
    meter.update(torch.tensor([0, 1]), torch.tensor([0, 0]))
    m = meter.compute()
    assert m['per_class_iou'] == [50., 0.]
    assert m['mIoU'] == pytest.approx(25.)


def test_all_ignored_gives_nan_and_bad_labels_are_named():
    meter = IoUAccumulator(num_classes=2)
    meter.update(torch.tensor([0, 1]), torch.full((2,), IGNORE_INDEX))
    assert math.isnan(meter.compute()['mIoU'])
    with pytest.raises(ValueError, match=r'labels must be in 0\.\.1 or 255'):
        meter.update(torch.tensor([0]), torch.tensor([7]))


def test_per_class_table_names_classes():
    areas = torch.tensor([[1., 0.], [2., 0.], [1., 0.], [2., 0.]])
    m = segmentation_metrics(areas, class_names=['wall', 'sky'])
    assert m['per_class_iou'] == {'wall': 50.0, 'sky': None}
    assert iou_table(m['per_class_iou']) == '| class | IoU (%) |\n|---|---:|\n| wall | 50.00 |\n| sky | - |\n'
