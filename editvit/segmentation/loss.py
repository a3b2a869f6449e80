"""Pixel-wise cross-entropy with the ignore label (Segmenter: `F.cross_entropy(ignore_index=255)`)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .metrics import IGNORE_INDEX


class SegmentationCrossEntropy(nn.Module):
    """Mean cross-entropy over the labelled pixels of a batch; 0 (not NaN) for a batch with none, which
    `F.cross_entropy`'s mean would turn into a NaN that stops the run."""

    def __init__(self, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """logits (B, K, H, W), labels (B, H, W)."""
        total = F.cross_entropy(logits.float(), labels, ignore_index=self.ignore_index, reduction='sum')
        return total / (labels != self.ignore_index).sum().clamp(min=1)
