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

# Gu et al., "When Attention Sink Emerges in Language Models" (ICLR 2025), Sec. 3: head h of layer l has a sink on
# the first token when the attention that token receives, averaged over the queries, exceeds epsilon = 0.3; the sink
# rate is the fraction of (layer, head) pairs that do. The first token of a ViT's sequence is [CLS].
CLS_SINK_EPSILON = 0.3
# The any-token variant: a head has a sink when some token receives more than SINK_UNIFORM_MULTIPLE times its uniform
# share 1/N. Gu et al.'s absolute 0.3 cannot be applied to any token: at 224 px (257 tokens) a share of 0.3 is 77
# times the uniform share, at 518 px (1370 tokens) 411 times, so the count of such heads falls with resolution. A
# multiple of the uniform share does not. 10 is the EDIT paper's bar for a sink (a sink ratio above 10, Fig. 1):
# random-weight ViTs stay below 2.
SINK_UNIFORM_MULTIPLE = 10.0
# Darcet et al., "Vision Transformers Need Registers" (ICLR 2024), Sec. 2 and Fig. 3: artifact tokens have about 10x
# the norm of the other tokens (DINOv2-g); the normal tokens sit within about 2x of the median (DINOv2-S here: the
# largest patch norm is 1.3-1.6x its image's median in every layer). A token is an outlier when its norm exceeds
# HIGH_NORM_RATIO times the median patch norm of its image and layer: 4x is twice the largest normal spread and well
# under the artifacts' 10x, so the test neither depends on how tightly the normal norms cluster (a quantile fence
# does, and flags tokens at 1.3x) nor misses an artifact.
HIGH_NORM_RATIO = 4.0


def received_attention(attention: torch.Tensor, num_prefix_tokens: int) -> torch.Tensor:
    """Mean attention each key receives from the patch queries: (..., Q, K) -> (..., K).

    The patch queries are rows num_prefix_tokens..Q-1. Every other measure of attention given to a token
    (cls_attention, other_attention, max_token_attention, the sink rates) is read off this vector.
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


def cls_sink_heads(received: torch.Tensor, epsilon: float = CLS_SINK_EPSILON) -> torch.Tensor:
    """Gu et al.'s first-token sink test per head: [CLS] (key 0) receives more than epsilon, (..., K) -> bool.

    `received` averages over the patch queries (Gu et al. average over every query of a causal sequence; the
    [CLS] and register rows are left out here as in every measure of this module, one query in 257 at 224 px).
    The `cls_sink_rate` is the mean of this over heads (and over layers for the model).
    """
    return received[..., 0] > epsilon


def token_sink_heads(received: torch.Tensor, multiple: float = SINK_UNIFORM_MULTIPLE) -> torch.Tensor:
    """The any-token sink test per head: some key receives more than multiple / K of the attention, (..., K) -> bool.

    K is the number of keys, so the threshold is `multiple` times a token's uniform share and the test does not
    depend on the resolution. The `token_sink_rate` is the mean of this over heads (and over layers).
    """
    return received.max(dim=-1).values > multiple / received.shape[-1]


def attention_entropy(attention: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in nats of each attention row, (..., K) -> (...): log K for uniform attention, 0 for one-hot."""
    return -torch.special.xlogy(attention, attention).sum(dim=-1)


def renormalised_entropy(weights: torch.Tensor) -> torch.Tensor:
    """Entropy of non-negative weights (..., K) after rescaling them to sum to 1 (e.g. the patch part of a row)."""
    return attention_entropy(weights / weights.sum(dim=-1, keepdim=True).clamp_min(1e-12))


def token_norms(tokens: torch.Tensor) -> torch.Tensor:
    """L2 norm of every token over its median in its image and layer, (..., N, D) -> (..., N): 1 for the median."""
    norms = tokens.float().norm(dim=-1)  # (..., N)
    return norms / norms.median(dim=-1, keepdim=True).values.clamp_min(1e-12)  # (..., N)


def max_norm_ratio(tokens: torch.Tensor) -> torch.Tensor:
    """Largest token norm over the median token norm, (..., N, D) -> (...): Darcet et al.'s artifacts give about 10,
    a model without them under 2. Pass the patch tokens only: [CLS] and registers have norms of their own."""
    return token_norms(tokens).max(dim=-1).values


def high_norm_tokens(tokens: torch.Tensor, ratio: float = HIGH_NORM_RATIO,
                     norm_threshold: Optional[float] = None) -> torch.Tensor:
    """Which tokens are high-norm outliers (Darcet et al.), (..., N, D) -> (..., N) bool.

    By default a token whose norm exceeds `ratio` times the median norm of its image's tokens (see HIGH_NORM_RATIO).
    With `norm_threshold`, Darcet et al.'s own test instead: a norm above that absolute value (they use 150 on the
    output of DINOv2-L; the scale depends on the model, so there is no default).
    """
    if norm_threshold is not None:
        return tokens.float().norm(dim=-1) > norm_threshold  # (..., N)
    return token_norms(tokens) > ratio  # (..., N)


def high_norm_fraction(tokens: torch.Tensor, ratio: float = HIGH_NORM_RATIO,
                       norm_threshold: Optional[float] = None) -> torch.Tensor:
    """Fraction of tokens that are high-norm outliers (`high_norm_tokens`), (..., N, D) -> (...): 0 without any."""
    return high_norm_tokens(tokens, ratio, norm_threshold).float().mean(dim=-1)


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
