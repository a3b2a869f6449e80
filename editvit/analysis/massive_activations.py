"""Massive activations: a few entries of the residual stream that are orders of magnitude above the rest.

Sun et al., "Massive Activations in Large Language Models" (COLM 2024). In LLMs and in ViTs (their Sec. 6: CLIP
ViT-L, DINOv2-reg ViT-G) a handful of activations of the hidden states between blocks are up to 10^4 times the
median magnitude. They sit in a few fixed feature dimensions, on a few tokens (register tokens, or a few patch
tokens in ViTs without registers), appear in a middle layer and stay, and act as fixed biases that create the
attention sinks. Sun et al. call an activation massive when its magnitude exceeds 100 and about 1000 times the
median magnitude of its hidden state (Sec. 2); both numbers are parameters here.

Per layer and image, the hidden state h is the block's output (B, N, D), every token included ([CLS], registers,
patches). The measures:

    median  = median over the N x D entries of |h|
    top_k   = the k largest |h| entries, with their token and feature dimension
    ratio   = |h| / median          (`top_activation_ratio`: the largest entry's ratio)
    massive = entries with |h| > MASSIVE_MAGNITUDE and ratio > MASSIVE_RATIO

and over images: the mean top ratio, the mean count of massive entries per image, and the (token, dimension)
positions that are most often among an image's top k, with their mean magnitude and ratio there.
"""
from collections import defaultdict
from typing import Any, Callable, Dict, List, Tuple

import torch

MASSIVE_RATIO = 1000.0
MASSIVE_MAGNITUDE = 100.0
TOP_K = 3


def top_activations(hidden: torch.Tensor, k: int = TOP_K) -> Tuple[torch.Tensor, ...]:
    """The k largest magnitudes of each image's hidden state (B, N, D) and where they sit.

    Returns:
        values: |h| of the top entries, (B, k), largest first.
        ratios: values over the image's median |h|, (B, k).
        tokens: their token index in 0..N-1, (B, k).
        dims: their feature dimension in 0..D-1, (B, k).
    """
    B, N, D = hidden.shape
    a = hidden.detach().abs().float().reshape(B, N * D)  # (B, N*D)
    median = a.median(dim=1, keepdim=True).values.clamp_min(1e-12)  # (B, 1)
    values, index = a.topk(min(k, N * D), dim=1)  # (B, k)
    return values, values / median, index // D, index % D


def massive_activation_count(hidden: torch.Tensor, ratio: float = MASSIVE_RATIO,
                             magnitude: float = MASSIVE_MAGNITUDE) -> torch.Tensor:
    """Number of massive activations (|h| > magnitude and > ratio x the median |h|) per image, (B, N, D) -> (B,)."""
    a = hidden.detach().abs().float()  # (B, N, D)
    median = a.flatten(1).median(dim=1).values.clamp_min(1e-12)  # (B,)
    return ((a > magnitude) & (a > ratio * median[:, None, None])).flatten(1).sum(dim=1)  # (B,)


class MassiveActivations:
    """Per-layer massive-activation statistics accumulated over images (each image counts once).

    Args:
        ratio: Sun et al.'s ratio to the median magnitude.
        magnitude: Sun et al.'s absolute magnitude.
        k: How many of each image's largest entries to record.
    """

    def __init__(self, ratio: float = MASSIVE_RATIO, magnitude: float = MASSIVE_MAGNITUDE, k: int = TOP_K) -> None:
        self.ratio, self.magnitude, self.k = ratio, magnitude, k
        self.num_images: Dict[int, int] = defaultdict(int)
        self._top_ratio: Dict[int, float] = defaultdict(float)
        self._count: Dict[int, float] = defaultdict(float)
        # layer -> (token, dim) -> [images in whose top k it is, sum of |h|, sum of ratios]
        self._positions: Dict[int, Dict[Tuple[int, int], List[float]]] = defaultdict(dict)

    def update(self, layer: int, hidden: torch.Tensor) -> None:
        """Add the hidden states (B, N, D) of one layer for a batch of images."""
        values, ratios, tokens, dims = top_activations(hidden, self.k)  # (B, k) each
        self._top_ratio[layer] += float(ratios[:, 0].double().sum())
        self._count[layer] += float(massive_activation_count(hidden, self.ratio, self.magnitude).sum())
        self.num_images[layer] += hidden.shape[0]
        for v, r, t, d in zip(values.flatten().tolist(), ratios.flatten().tolist(), tokens.flatten().tolist(),
                              dims.flatten().tolist()):
            entry = self._positions[layer].setdefault((t, d), [0, 0.0, 0.0])
            entry[0] += 1
            entry[1] += v
            entry[2] += r

    def layer_summary(self, layer: int, token_name: Callable[[int], str]) -> Dict[str, Any]:
        """top_activation_ratio (mean over images), massive_activations (mean count per image) and massive_top: the k
        positions most often among an image's top k (ties: larger mean magnitude first)."""
        n = self.num_images[layer]
        ranked = sorted(self._positions[layer].items(), key=lambda item: (-item[1][0], -item[1][1]))[:self.k]
        top = [dict(token=token_name(t), dim=d, magnitude=s / c, ratio=r / c, images=c / n)
               for (t, d), (c, s, r) in ranked]
        return dict(top_activation_ratio=self._top_ratio[layer] / n, massive_activations=self._count[layer] / n,
                    massive_top=top)
