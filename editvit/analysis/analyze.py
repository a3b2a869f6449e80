"""The analysis of one model on a set of images: metrics, Fig. 1b blocks and Fig. 5 maps from one pass per batch."""
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from .extract import attention_blocks, extract_attention
from .images import NamedImage, denormalise, images_to_batch
from .sequential import sequential_attention_maps
from .sink_measures import HIGH_NORM_RATIO
from .statistics import AttentionStatistics


@dataclass
class ModelAnalysis:
    """What the analysis of one model produced.

    Attributes:
        name: Model name (timm name, or what the caller passed).
        metrics: Per-layer / per-head metrics and model-level summaries (`AttentionStatistics.summary`).
        block: Fig. 1b: the top-left block of every layer's attention, averaged over heads and images, (L, b, b).
        maps: Fig. 5: per-image, per-layer maps over the patch grid, (num_images, L, h, w).
        map_label: What `maps` shows (e.g. 'decoder attention of [CLS] to patches').
        images: The crops the model saw, as RGB in [0, 1], (num_images, H, W, 3).
        image_names: One name per image.
    """
    name: str
    metrics: Dict[str, Any]
    block: torch.Tensor
    maps: torch.Tensor
    map_label: str
    images: np.ndarray
    image_names: List[str]


def analyze_model(
        model: nn.Module,
        images: Sequence[NamedImage],
        name: Optional[str] = None,
        map_method: str = 'attention',
        batch_size: int = 16,
        max_attention_bytes: int = 2 ** 30,
        high_norm_ratio: float = HIGH_NORM_RATIO,
        high_norm_threshold: Optional[float] = None,
) -> ModelAnalysis:
    """Measure the attention sink of model on images and build its sequential attention maps.

    One forward pass per batch: its attention gives the metrics (accumulated over images) and the maps.

    Args:
        model: EDIT or a timm ViT (see `extract_attention`).
        images: (name, PIL image) pairs, prepared with the model's pretrained_cfg transform.
        name: Name to report; defaults to the model's pretrained_cfg architecture.
        map_method: 'attention' or 'rollout' (see `sequential_attention_maps`).
        batch_size: Images per forward pass, lowered so that a batch's attention maps (B, L, H, N, N) take at
            most max_attention_bytes (large inputs: 1370 tokens at 518 px need 540 MB per image for ViT-S).
        high_norm_ratio, high_norm_threshold: The high-norm outlier test (`sink_measures.high_norm_tokens`).
    """
    if not images:
        raise ValueError('no images to analyse')
    name = name or getattr(model, 'pretrained_cfg', {}).get('architecture', type(model).__name__)
    blocks = attention_blocks(model)
    num_tokens = model.patch_embed.num_patches + getattr(model, 'num_prefix_tokens', 0)
    per_image = 4 * len(blocks) * blocks[0].attn.num_heads * num_tokens ** 2  # float32 maps
    batch_size = max(1, min(batch_size, max_attention_bytes // per_image))
    stats = AttentionStatistics(high_norm_ratio=high_norm_ratio, high_norm_threshold=high_norm_threshold)
    all_maps, crops, label = [], [], ''
    for start in range(0, len(images), batch_size):
        x = images_to_batch(images[start:start + batch_size], model)  # (B, C, H, W)
        maps = extract_attention(model, x)
        stats.update(maps)
        seq, label = sequential_attention_maps(maps, map_method)  # (B, L, h, w)
        all_maps.append(seq)
        crops.append(denormalise(x, model))
    metrics = dict(model=name, map_method=map_method, map_label=label, **stats.summary())
    return ModelAnalysis(name=name, metrics=metrics, block=stats.block(), maps=torch.cat(all_maps),
                         map_label=label, images=np.concatenate(crops), image_names=[n for n, _ in images])
