"""What several test files build: a tiny EDIT, uniform attention in a model, an attention-sink summary."""
import timm
import torch

import editvit  # noqa: F401  registers the EDIT models


def tiny_edit(**kwargs) -> torch.nn.Module:
    """A CIFAR-sized EDIT small enough for fast tests."""
    args = dict(img_size=32, patch_size=8, embed_dim=48, depth=3, num_heads=3, num_classes=10)
    return timm.create_model('edit_tiny_patch16_224', **{**args, **kwargs})


def zero_query_key(model: torch.nn.Module) -> None:
    """Zero the query and key projections (weights and biases) of every block that has them: each attention row
    becomes uniform (timm Attention and PSViT's own-attention layers; sharing layers have none)."""
    with torch.no_grad():
        for block in model.blocks:
            if hasattr(block.attn, 'qkv'):
                n = 2 * block.attn.qkv.weight.shape[0] // 3
                block.attn.qkv.weight[:n] = 0
                block.attn.qkv.bias[:n] = 0


def attention_summary(model: torch.nn.Module, x: torch.Tensor) -> dict:
    """The attention-sink statistics of model on images x, summarised."""
    from editvit.analysis import AttentionStatistics, extract_attention
    stats = AttentionStatistics()
    stats.update(extract_attention(model, x))
    return stats.summary()
