"""A pre-norm ViT block that also returns its attention map, for `forward_with_intermediates`.

timm's `Attention` calls the fused kernel by default, which never forms the map. Here a timm `Block` runs timm's
explicit path on its own modules, so tokens and map are exactly what `fused_attn = False` computes:

    A = softmax(q_norm(q) k_norm(k)^T * scale)         # (B, H, N, N), rows = queries, columns = keys
    x = x + DropPath(LS_1(proj(norm(A V))))            # (B, N, D)
    x = x + DropPath(LS_2(MLP(LN(x))))                 # (B, N, D)

A block with its own `forward_with_attention(x)` (editvit's sharing/pooling blocks) is asked for it instead.
"""
from typing import Tuple

import torch
import torch.nn as nn


def block_with_attention(block: nn.Module, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Run `block` on tokens x (B, N, D); returns its output (B, N, D) and its attention map (B, H, N, N)."""
    if hasattr(block, 'forward_with_attention'):
        return block.forward_with_attention(x)
    attn = block.attn
    B, N, _ = x.shape
    qkv = attn.qkv(block.norm1(x)).reshape(B, N, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)  # (B, H, N, Dh) each
    q, k = attn.q_norm(q), attn.k_norm(k)
    a = (q * attn.scale @ k.transpose(-2, -1)).softmax(dim=-1)  # (B, H, N, N)
    y = (attn.attn_drop(a) @ v).transpose(1, 2).reshape(B, N, -1)  # (B, N, H Dh)
    y = attn.norm(y)
    if getattr(attn, 'gate', None) is not None:
        y = y * attn.gate(block.norm1(x)).sigmoid()
    y = attn.proj_drop(attn.proj(y))  # (B, N, D)
    x = x + block.drop_path1(block.ls1(y))  # (B, N, D)
    x = x + block.drop_path2(block.ls2(block.mlp(block.norm2(x))))  # (B, N, D)
    return x, a
