"""mIoU the standard way (mmseg's `mean_iou`, which Segmenter's evaluation calls): per-class intersection and union
summed over the whole validation set, then IoU_c = sum I_c / sum U_c. Classes whose summed union is zero (absent
from both the labels and the predictions) are left out of the mean. Pixels labelled `ignore_index` count nowhere.
"""
from typing import Dict, List, Optional, Sequence

import torch

IGNORE_INDEX = 255


class IoUAccumulator:
    """Sums of intersection, union, predicted area and labelled area per class, over any number of batches.

    Args:
        num_classes: Classes K.
        ignore_index: Label of pixels that do not count.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.areas = torch.zeros(4, num_classes, dtype=torch.float64)  # intersection, union, predicted, labelled

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: predicted classes and labels of the same shape, e.g. (B, H, W)."""
        if pred.shape != target.shape:
            raise ValueError(f'prediction {tuple(pred.shape)} and labels {tuple(target.shape)} differ in shape')
        valid = target != self.ignore_index
        pred, target = pred[valid].long(), target[valid].long()  # (M,), (M,)
        K = self.num_classes
        if target.numel() and (target.min() < 0 or target.max() >= K):
            raise ValueError(f'labels must be in 0..{K - 1} or {self.ignore_index}, got {target.unique().tolist()}')
        inter = torch.bincount(target[pred == target], minlength=K)[:K]  # (K,)
        area_pred = torch.bincount(pred.clamp(0, K - 1), minlength=K)[:K]  # (K,)
        area_label = torch.bincount(target, minlength=K)[:K]  # (K,)
        self.areas += torch.stack([inter, area_pred + area_label - inter, area_pred, area_label]).cpu().double()

    def compute(self) -> Dict[str, float]:
        return segmentation_metrics(self.areas)


def segmentation_metrics(areas: torch.Tensor, class_names: Optional[Sequence[str]] = None) -> Dict[str, object]:
    """Metrics from summed areas (4, K) = (intersection, union, predicted, labelled) per class.

    Returns:
        'mIoU' (%): mean IoU over classes with a non-zero union; 'pixel_acc' (%): correctly labelled pixels over
        labelled pixels; 'mAcc' (%): mean per-class accuracy over classes present in the labels; 'per_class_iou':
        IoU (%) per class, None where the class has no union; 'classes_present'.
    """
    inter, union, _, label = areas.double()
    present = union > 0
    iou = torch.where(present, inter / union.clamp(min=1), torch.full_like(inter, float('nan')))  # (K,)
    labelled = label > 0
    acc = inter[labelled] / label[labelled]
    per_class: List[Optional[float]] = [None if v != v else round(100. * float(v), 4) for v in iou.tolist()]
    out: Dict[str, object] = {
        'mIoU': 100. * float(iou[present].mean()) if present.any() else float('nan'),
        'pixel_acc': 100. * float(inter.sum() / label.sum()) if label.sum() > 0 else float('nan'),
        'mAcc': 100. * float(acc.mean()) if labelled.any() else float('nan'),
        'classes_present': int(present.sum()),
        'per_class_iou': per_class,
    }
    if class_names is not None:
        out['per_class_iou'] = dict(zip(class_names, per_class))
    return out


def iou_table(per_class_iou: Dict[str, Optional[float]]) -> str:
    """A Markdown table of per-class IoU (%), '-' for classes absent from labels and predictions."""
    lines = ['| class | IoU (%) |', '|---|---:|']
    for name, value in per_class_iou.items():
        lines.append(f'| {name} | {"-" if value is None else f"{value:.2f}"} |')
    return '\n'.join(lines) + '\n'
