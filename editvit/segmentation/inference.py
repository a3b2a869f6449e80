"""Whole-image, sliding-window and multi-scale/flip inference, as in Segmenter's official code
(rstrudel/segmenter, segm/model/utils.py: `resize`, `sliding_window`, `merge_windows`, `inference`).

A view is the image rescaled by a ratio (and flipped or not). Each view is upsized so its short side is at least the
window, cut into windows (the last one of each row and column flush with the border), the window logits are
averaged where windows overlap, resized to the original image size and turned into probabilities; the probabilities
are averaged over the views. Single-scale testing is the one view (ratio 1, no flip).
"""
from typing import Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

# mmseg's ADE20K multi-scale test ratios, which Segmenter uses
MULTI_SCALE_RATIOS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


def window_anchors(length: int, window: int, stride: int) -> list:
    """Start offsets of windows along one side: every stride while a window fits, then one flush with the end."""
    if length <= window:
        return [0]
    return [a for a in range(0, length, stride) if a < length - window] + [length - window]


def resize_short_side_at_least(images: torch.Tensor, size: int) -> torch.Tensor:
    """Upsize (B, C, H, W) so that min(H, W) >= size, keeping the aspect ratio (Segmenter's `resize`)."""
    H, W = images.shape[-2:]
    if min(H, W) >= size:
        return images
    scale = size / min(H, W)
    new = (max(size, round(H * scale)), max(size, round(W * scale)))
    return F.interpolate(images, size=new, mode='bilinear', align_corners=False)  # (B, C, H', W')


@torch.no_grad()
def sliding_window_logits(model: nn.Module, images: torch.Tensor, window: int, stride: int,
                          window_batch: int = 8) -> torch.Tensor:
    """Logits (B, K, H, W) of images (B, C, H, W) with min(H, W) >= window: window x window crops every `stride`
    pixels, run in batches of `window_batch` images x windows, their logits averaged where crops overlap."""
    B, _, H, W = images.shape
    if min(H, W) < window:
        raise ValueError(f'images of {H}x{W} are smaller than the {window}x{window} window; upsize them first')
    if stride < 1 or stride > window:
        raise ValueError(f'the window stride must be in 1..{window} so that windows cover the image, got {stride}')
    anchors = [(h, w) for h in window_anchors(H, window, stride) for w in window_anchors(W, window, stride)]
    crops = torch.stack([images[:, :, h:h + window, w:w + window] for h, w in anchors], 1)  # (B, A, C, ws, ws)
    crops = crops.flatten(0, 1)  # (B*A, C, ws, ws)
    out = torch.cat([model(crops[i:i + window_batch]) for i in range(0, len(crops), window_batch)])  # (B*A, K, ws, ws)
    out = out.float().unflatten(0, (B, len(anchors)))  # (B, A, K, ws, ws)
    logits = images.new_zeros((B, out.shape[2], H, W), dtype=torch.float32)  # (B, K, H, W)
    count = images.new_zeros((1, 1, H, W), dtype=torch.float32)
    for a, (h, w) in enumerate(anchors):
        logits[:, :, h:h + window, w:w + window] += out[:, a]
        count[:, :, h:h + window, w:w + window] += 1
    return logits / count  # (B, K, H, W)


@torch.no_grad()
def segment(model: nn.Module, images: torch.Tensor, window: int, stride: int,
            ratios: Sequence[float] = (1.0,), flip: bool = False, out_size: Tuple[int, int] = None,
            window_batch: int = 8) -> torch.Tensor:
    """Class probabilities (B, K, H_out, W_out) of images (B, C, H, W), averaged over the views: every ratio, each
    also flipped horizontally if flip.

    Args:
        model: Images (b, C, window, window) -> logits (b, K, window, window), e.g. a `Segmenter`.
        images: Normalised images at the test scale (Segmenter on ADE20K: short side 512).
        window: Sliding-window size (the model's input size).
        stride: Sliding-window stride (Segmenter on ADE20K: 512).
        ratios: Scale ratios of the views (multi-scale: MULTI_SCALE_RATIOS).
        flip: Add the horizontally flipped view of every ratio.
        out_size: Size of the result (default: the images' size), e.g. the size of the original labels.
        window_batch: Windows per forward pass.
    """
    H, W = images.shape[-2:]
    out_size = tuple(out_size or (H, W))
    probs = None
    views = [(r, f) for r in ratios for f in ((False, True) if flip else (False,))]
    for ratio, flipped in views:
        view = images
        if ratio != 1.0:
            view = F.interpolate(images, size=(round(H * ratio), round(W * ratio)), mode='bilinear',
                                 align_corners=False)  # (B, C, rH, rW)
        if flipped:
            view = view.flip(-1)
        view = resize_short_side_at_least(view, window)
        logits = sliding_window_logits(model, view, window, stride, window_batch)  # (B, K, h, w)
        logits = F.interpolate(logits, size=out_size, mode='bilinear', align_corners=False)  # (B, K, H_out, W_out)
        if flipped:
            logits = logits.flip(-1)
        p = logits.softmax(dim=1)
        probs = p if probs is None else probs + p
    return probs / len(views)  # (B, K, H_out, W_out)
