"""Segmenter's decoders (Strudel et al., "Segmenter: Transformer for Semantic Segmentation", ICCV 2021, Sec. 3.2),
as in its official code (rstrudel/segmenter, segm/model/decoder.py).

Mask Transformer: K learnable class embeddings are processed jointly with the projected patch tokens by a few
transformer layers; each class mask is the scalar product of L2-normalised patch and class embeddings.

    z = proj_dec(x)                                  # (B, N, D)   x: backbone patch tokens (B, N, D_enc)
    z = [z; cls_emb]                                 # (B, N+K, D)
    z = LN(Blocks(z))                                # 2 pre-norm layers, heads = D/64, FFN 4D, dropout 0.1
    p = l2norm(z[:, :N] @ W_p), c = l2norm(z[:, N:] @ W_c)
    masks = LN_K(p @ c^T)                            # (B, N, K), LayerNorm over the classes
"""
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Block


def _init_linear_and_norm(m: nn.Module) -> None:
    """Segmenter's init_weights: truncated normal 0.02 for linear weights, zero biases, unit LayerNorms."""
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def to_grid(tokens: torch.Tensor, grid_size: Tuple[int, int]) -> torch.Tensor:
    """(B, N, C) tokens in row-major patch order -> (B, C, h, w) maps."""
    B, N, C = tokens.shape
    h, w = grid_size
    if h * w != N:
        raise ValueError(f'{N} tokens do not fill a {h}x{w} patch grid')
    return tokens.transpose(1, 2).reshape(B, C, h, w)  # (B, C, h, w)


class MaskTransformer(nn.Module):
    """Segmenter's Mask Transformer decoder.

    Args:
        num_classes: Classes K (one learnable class embedding each).
        encoder_dim: Width of the backbone's patch tokens.
        embed_dim: Width D of the decoder (Segmenter: the backbone width).
        depth: Transformer layers (Segmenter: 2).
        num_heads: Attention heads (Segmenter: D / 64).
        mlp_ratio: FFN width over D (Segmenter: 4).
        dropout: Dropout of attention, projections and FFN (Segmenter: 0.1).
        drop_path: Stochastic depth of the decoder layers (Segmenter: 0).
    """

    def __init__(self, num_classes: int, encoder_dim: int, embed_dim: int, depth: int = 2, num_heads: int = 1,
                 mlp_ratio: float = 4., dropout: float = 0.1, drop_path: float = 0.) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.scale = embed_dim ** -0.5
        self.proj_dec = nn.Linear(encoder_dim, embed_dim)
        dpr = [drop_path * i / max(depth - 1, 1) for i in range(depth)]
        # timm's Block is Segmenter's Block: pre-norm attention and FFN (GELU), dropout after the attention softmax,
        # the projections and both FFN layers, drop path on both residual branches
        self.blocks = nn.ModuleList([
            Block(embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=True, proj_drop=dropout, attn_drop=dropout,
                  drop_path=dpr[i])
            for i in range(depth)])
        self.cls_emb = nn.Parameter(torch.randn(1, num_classes, embed_dim))
        self.proj_patch = nn.Parameter(self.scale * torch.randn(embed_dim, embed_dim))
        self.proj_classes = nn.Parameter(self.scale * torch.randn(embed_dim, embed_dim))
        self.decoder_norm = nn.LayerNorm(embed_dim)
        self.mask_norm = nn.LayerNorm(num_classes)
        self.apply(_init_linear_and_norm)
        trunc_normal_(self.cls_emb, std=.02)

    @torch.jit.ignore
    def no_weight_decay(self) -> set:
        return {'cls_emb'}

    def forward(self, x: torch.Tensor, grid_size: Tuple[int, int]) -> torch.Tensor:
        """Patch tokens (B, N, D_enc) on a grid_size patch grid -> class masks (B, K, h, w) at patch resolution."""
        K = self.num_classes
        x = self.proj_dec(x)  # (B, N, D)
        x = torch.cat([x, self.cls_emb.expand(x.shape[0], -1, -1)], dim=1)  # (B, N+K, D)
        for block in self.blocks:
            x = block(x)  # (B, N+K, D)
        x = self.decoder_norm(x)
        patches = x[:, :-K] @ self.proj_patch  # (B, N, D)
        classes = x[:, -K:] @ self.proj_classes  # (B, K, D)
        patches = F.normalize(patches, dim=-1)
        classes = F.normalize(classes, dim=-1)
        masks = patches @ classes.transpose(1, 2)  # (B, N, K) cosine similarities
        masks = self.mask_norm(masks)  # (B, N, K)
        return to_grid(masks, grid_size)  # (B, K, h, w)


class LinearDecoder(nn.Module):
    """Segmenter's linear baseline decoder: a per-patch linear classifier of the backbone's patch tokens.

    Args:
        num_classes: Classes K.
        encoder_dim: Width of the backbone's patch tokens.
    """

    def __init__(self, num_classes: int, encoder_dim: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.head = nn.Linear(encoder_dim, num_classes)
        self.apply(_init_linear_and_norm)

    def forward(self, x: torch.Tensor, grid_size: Tuple[int, int]) -> torch.Tensor:
        """Patch tokens (B, N, D_enc) -> class logits (B, K, h, w) at patch resolution."""
        return to_grid(self.head(x), grid_size)  # (B, K, h, w)
