"""Attention-sink measures: definitions on single attention tensors (what is averaged over what).

Conventions used by every function here:
  - an attention tensor is (..., Q, K): rows are queries, columns are keys, each row sums to 1;
  - the queries are the patch tokens only (the image content; the [CLS] and register rows are left out), so the
    numbers describe how patches spread their attention, as in the paper's Fig. 1;
  - a per-layer number averages the per-head numbers over the heads, unless stated otherwise.
"""
import math
from typing import Optional

import torch

# Gu et al., "When Attention Sink Emerges in Language Models" (ICLR 2025): a head has a sink when one token
# receives more than epsilon = 0.3 of its attention on average.
SINK_THRESHOLD = 0.3
# Darcet et al., "Vision Transformers Need Registers" (ICLR 2024) find high-norm tokens as outliers of the bimodal
# token-norm distribution. Model-independently we flag Tukey's "far out" outliers: norm > Q3 + 3 IQR.
HIGH_NORM_IQR_FACTOR = 3.0


def received_attention(attention: torch.Tensor, num_prefix_tokens: int) -> torch.Tensor:
    """Mean attention each key receives from the patch queries: (..., Q, K) -> (..., K).

    The patch queries are rows num_prefix_tokens..Q-1. Every other measure of attention given to a token
    (cls_attention, other_attention, max_token_attention, sink rate) is read off this vector.
    """
    return attention[..., num_prefix_tokens:, :].mean(dim=-2)  # (..., K)


def cls_and_other_attention(received: torch.Tensor) -> tuple:
    """The Fig. 1 pair from `received_attention` (..., K) with [CLS] at key 0.

    Returns:
        cls_attention: attention a patch query gives to [CLS], averaged over patch queries, (...).
        other_attention: mean attention a patch query gives to each other token, over the K-1 keys that are not
            [CLS] (patches, the query itself included, and any register / distillation tokens), (...).
    """
    return received[..., 0], received[..., 1:].mean(dim=-1)


def sink_ratio(cls_attention: torch.Tensor, other_attention: torch.Tensor) -> torch.Tensor:
    """cls_attention / other_attention: 1 for uniform attention; the paper reports > 10 in every layer of DeiT3.

    A ratio of means: callers average both terms (over images, queries, heads) before dividing.
    """
    return cls_attention / other_attention


def max_token_ratio(received: torch.Tensor) -> torch.Tensor:
    """Largest received attention over the mean of the other K-1 keys, (..., K) -> (...).

    The sink ratio without knowing where the sink is: it equals `sink_ratio` when the sink is [CLS], and it applies
    to models without [CLS] (EDIT's encoder), where a sink could sit on a patch. 1 for uniform attention.
    """
    top = received.max(dim=-1).values  # (...)
    K = received.shape[-1]
    return top / ((received.sum(dim=-1) - top) / (K - 1))


def sink_heads(received: torch.Tensor, threshold: float = SINK_THRESHOLD) -> torch.Tensor:
    """Gu et al.'s sink test per head: some key receives more than `threshold` of the attention, (..., K) -> bool.

    The sink rate is the mean of this over heads (and over layers for a model-level rate).
    """
    return received.max(dim=-1).values > threshold


def attention_entropy(attention: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in nats of each attention row, (..., K) -> (...): log K for uniform attention, 0 for one-hot."""
    return -torch.special.xlogy(attention, attention).sum(dim=-1)


def renormalised_entropy(weights: torch.Tensor) -> torch.Tensor:
    """Entropy of non-negative weights (..., K) after rescaling them to sum to 1 (e.g. the patch part of a row)."""
    return attention_entropy(weights / weights.sum(dim=-1, keepdim=True).clamp_min(1e-12))


def high_norm_fraction(tokens: torch.Tensor, iqr_factor: float = HIGH_NORM_IQR_FACTOR) -> torch.Tensor:
    """Fraction of tokens whose L2 norm is an outlier of the token-norm distribution, (..., N, D) -> (...).

    An outlier has norm > Q3 + iqr_factor * (Q3 - Q1), the quartiles taken over the N tokens of that image and
    layer (Tukey's far-out fence; Darcet et al.'s artifact tokens are such outliers, about 2% of the tokens in
    large DINOv2 / DeiT-III models). Pass the patch tokens only: [CLS] and registers have norms of their own.
    """
    norms = tokens.float().norm(dim=-1)  # (..., N)
    q1, q3 = torch.quantile(norms, torch.tensor([0.25, 0.75], device=norms.device), dim=-1, keepdim=True)  # (..., 1)
    fence = q3 + iqr_factor * (q3 - q1)  # (..., 1)
    return (norms > fence).float().mean(dim=-1)


def uniform_entropy(num_keys: int) -> float:
    """The entropy of uniform attention over num_keys keys, log K: the upper bound of `attention_entropy`."""
    return math.log(num_keys)


def trend(values: torch.Tensor) -> Optional[float]:
    """Least-squares slope of values (L,) against the layer index: negative = decreasing with depth."""
    if values.numel() < 2:
        return None
    x = torch.arange(values.numel(), dtype=torch.float64)
    y = values.double()
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / (x * x).sum())
