"""Attention sharing (PSViT, Chen et al., arXiv 2108.03428): a layer reuses the previous layer's attention map.

Adjacent layers of a ViT compute strongly correlated attention maps, so a sharing layer skips its own:

    own layer i:      A_i = softmax(Q_i K_i^T / sqrt(d))       out_i = A_i V_i W_o   (q, k, v projections)
    sharing layer i:  A_i = A_(i-1)                            out_i = A_i V_i W_o   (v projection only)

A sharing layer has no query/key projections (saving 2 N D^2 + N^2 D multiply-adds and 2 D^2 + 2 D parameters)
and uses exactly the map its predecessor used: the one that layer computed, or, if it shares too, the one it reused.

`MapAttention` keeps timm `Attention`'s parameter names (`qkv`, `proj`), so DeiT weights fit an own-attention layer.
"""
from typing import Callable, Optional, Tuple, Type

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath, LayerScale, Mlp


class MapAttention(nn.Module):
    """Multi-head self-attention that returns its attention map (computed explicitly, not fused).

    Given `shared_attn`, it runs as a sharing layer over its own value projection (the last third of `qkv`) and
    ignores its query/key weights: the weight-sharing view a PSViT supernet uses for a layer that shares.

    Args:
        dim: Token width D.
        num_heads: Heads H.
        qkv_bias: Bias on the qkv projection.
        attn_drop: Dropout on the attention map (after it is returned, on the copy that mixes the values).
        proj_drop: Dropout after the output projection.
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False, attn_drop: float = 0.,
                 proj_drop: float = 0.) -> None:
        super().__init__()
        self.num_heads, self.head_dim = _heads(dim, num_heads)
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, shared_attn: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Returns the output (B, N, D) and the attention map used (B, H, N, N)."""
        B, N, D = x.shape
        if shared_attn is not None:
            w_v = self.qkv.weight[2 * D:]  # (D, D)
            b_v = self.qkv.bias[2 * D:] if self.qkv.bias is not None else None
            v = F.linear(x, w_v, b_v).view(B, N, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, N, Dh)
            return _mix(self, shared_attn, v), shared_attn
        qkv = self.qkv(x).view(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (3, B, H, N, Dh)
        q, k, v = qkv.unbind(0)  # (B, H, N, Dh) each
        attn = (q * self.scale @ k.transpose(-2, -1)).softmax(dim=-1)  # (B, H, N, N)
        return _mix(self, attn, v), attn


class SharedAttention(nn.Module):
    """The attention of a sharing layer: a value projection and an output projection, no queries or keys.

    Args:
        dim: Token width D.
        num_heads: Heads H; must match the layer whose map is reused.
        qkv_bias: Bias on the value projection.
        attn_drop: Dropout on the reused map (on this layer's copy only).
        proj_drop: Dropout after the output projection.
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False, attn_drop: float = 0.,
                 proj_drop: float = 0.) -> None:
        super().__init__()
        self.num_heads, self.head_dim = _heads(dim, num_heads)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, shared_attn: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Returns the output (B, N, D) and the reused map (B, H, N, N)."""
        if shared_attn is None:
            raise ValueError('a sharing attention layer needs the previous layer\'s attention map; the first layer '
                             'of a model (or of a stage whose token count changes) cannot share')
        B, N, D = x.shape
        if shared_attn.shape != (B, self.num_heads, N, N):
            raise ValueError(f'the previous attention map has shape {tuple(shared_attn.shape)}, this layer needs '
                             f'{(B, self.num_heads, N, N)}: sharing needs the same heads and token count')
        v = self.v(x).view(B, N, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, N, Dh)
        return _mix(self, shared_attn, v), shared_attn


def _heads(dim: int, num_heads: int) -> Tuple[int, int]:
    """(H, D / H), or a clear error if the width does not split into num_heads heads."""
    if dim % num_heads != 0:
        raise ValueError(f'width {dim} is not divisible by num_heads={num_heads}')
    return num_heads, dim // num_heads


def _mix(layer: nn.Module, attn: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """out = proj(A V): the values mixed by the attention map, heads merged."""
    B, H, N, Dh = v.shape
    x = (layer.attn_drop(attn) @ v).transpose(1, 2).reshape(B, N, H * Dh)  # (B, N, D)
    return layer.proj_drop(layer.proj(x))  # (B, N, D)


class AttentionSharingBlock(nn.Module):
    """A pre-norm ViT block (timm `Block`'s layout and names) whose attention is its own or the previous layer's.

        x = x + DropPath(LS_1(Attn(LN(x), A_prev)))       # Attn = MapAttention (own) or SharedAttention (share)
        x = x + DropPath(LS_2(MLP(LN(x))))

    Args:
        dim: Token width D.
        num_heads: Heads H.
        share: Reuse the previous layer's map (no q/k projections) instead of computing one.
        mlp_ratio: MLP hidden width over D.
        qkv_bias: Bias on the q/k/v projections.
        init_values: LayerScale initial value; None for no LayerScale.
        proj_drop: Dropout after the attention and MLP projections.
        attn_drop: Dropout on the attention map.
        drop_path: Stochastic depth rate of this block.
        act_layer: MLP activation.
        norm_layer: Normalisation layer.
    """

    def __init__(
            self,
            dim: int,
            num_heads: int,
            share: bool = False,
            mlp_ratio: float = 4.,
            qkv_bias: bool = False,
            init_values: Optional[float] = None,
            proj_drop: float = 0.,
            attn_drop: float = 0.,
            drop_path: float = 0.,
            act_layer: Type[nn.Module] = nn.GELU,
            norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
    ) -> None:
        super().__init__()
        self.share = share
        attn_cls = SharedAttention if share else MapAttention
        self.norm1 = norm_layer(dim)
        self.attn = attn_cls(dim, num_heads=num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop)
        self.ls1 = LayerScale(dim, init_values=init_values) if init_values else nn.Identity()
        self.drop_path1 = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=act_layer, drop=proj_drop)
        self.ls2 = LayerScale(dim, init_values=init_values) if init_values else nn.Identity()
        self.drop_path2 = DropPath(drop_path) if drop_path > 0. else nn.Identity()

    def forward(self, x: torch.Tensor, prev_attn: Optional[torch.Tensor] = None,
                share: Optional[bool] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Run the block; returns the tokens (B, N, D) and the attention map it used (B, H, N, N).

        Args:
            x: Tokens (B, N, D).
            prev_attn: The map the previous layer used; read only when this layer shares.
            share: Override the built choice (a supernet's `MapAttention` layer can run as a sharing layer).
        """
        share = self.share if share is None else share
        if share and prev_attn is None:
            raise ValueError('this layer shares attention but no previous map was given (the first layer of a '
                             'model, or of a stage whose token count changes, cannot share)')
        out, attn = self.attn(self.norm1(x), prev_attn if share else None)
        x = x + self.drop_path1(self.ls1(out))  # (B, N, D)
        x = x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))  # (B, N, D)
        return x, attn
