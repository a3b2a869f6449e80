"""PSViT: a DeiT with token Pooling and attention Sharing (Chen et al., arXiv 2108.03428).

A DeiT of constant width D whose layers are grouped into stages. Entering stage s the patch tokens are pooled to
N_s (1D over the sequence or 2D over the patch grid, see `TokenPooling`); any layer whose predecessor sees the same
tokens may reuse that layer's attention map instead of computing its own (see `AttentionSharingBlock`).

    x_0 = [cls; PatchEmbed(img)] + pos                   # (B, 1+N_0, D)
    for stage s, layer l in s:
        x = Pool_{N_s}(x)   at the first layer of s       # (B, 1+N_s, D), [CLS] not pooled
        x, A = Block_l(x, A if share_l else None)         # A: the map layer l used, (B, H, 1+N_s, 1+N_s)
    logits = head(LN(x)[:, 0])

The token numbers per stage and the sharing choice per layer are configuration (`num_tokens`, `share_attention`);
`forward_subnet` runs other choices on the same weights, which is how the PSViT search trains one supernet
(`editvit.search`).

Choices where the paper could not be checked (its body was not retrievable here, only the abstract), documented so
they can be revisited: constant width across stages (the abstract describes DeiT plus pooling and sharing, nothing
else), the [CLS] kept out of pooling, adaptive average pooling, DeiT (not DeiT3) blocks without LayerScale, and the
registered configurations below (sized to DeiT-Tiny/Small budgets; see their docstrings).
"""
from functools import partial
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import PatchEmbed, calculate_drop_path_rates
from timm.models import build_model_with_cfg, checkpoint, generate_default_cfgs, register_model

from .base import Layer, TokenClassifier
from .layers.ps_config import check_psvit_config
from .layers.shared_attention import AttentionSharingBlock
from .layers.token_pooling import PoolingMode, TokenPooling, grid_side
from .sizes import check_vit_sizes


class PSViT(TokenClassifier):
    """DeiT with token pooling between stages and attention sharing between adjacent layers.

    Args:
        img_size: Input image size.
        patch_size: Patch size.
        in_chans: Input channels.
        num_classes: Classes of the linear head (0 for no head).
        global_pool: 'token' classifies the [CLS], 'avg' the mean of the final patch tokens.
        embed_dim: Token width D (the same in every stage).
        num_heads: Attention heads.
        depths: Layers per stage.
        num_tokens: Patch tokens in each stage (excluding the [CLS]); the first may equal the patch count.
        pooling: '1d' pools the token sequence, '2d' the patch grid (token numbers must then be squares).
        share_attention: Per layer, reuse the previous layer's map (None: no layer shares).
        mlp_ratio: MLP hidden width over D.
        qkv_bias: Bias on the q/k/v projections.
        init_values: LayerScale initial value; None (DeiT) for none.
        drop_rate: Dropout before the head.
        pos_drop_rate: Dropout after the position embedding.
        proj_drop_rate: Dropout after attention and MLP projections.
        attn_drop_rate: Attention dropout.
        drop_path_rate: Stochastic depth rate, growing linearly with depth.
    """

    def __init__(
            self,
            img_size: Union[int, Tuple[int, int]] = 224,
            patch_size: int = 16,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = 'token',
            embed_dim: int = 192,
            num_heads: int = 3,
            depths: Sequence[int] = (4, 4, 4),
            num_tokens: Sequence[int] = (196, 100, 49),
            pooling: PoolingMode = '2d',
            share_attention: Optional[Sequence[bool]] = None,
            mlp_ratio: float = 4.,
            qkv_bias: bool = True,
            init_values: Optional[float] = None,
            drop_rate: float = 0.,
            pos_drop_rate: float = 0.,
            proj_drop_rate: float = 0.,
            attn_drop_rate: float = 0.,
            drop_path_rate: float = 0.,
    ) -> None:
        check_vit_sizes(img_size=img_size, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim,
                        num_heads=num_heads, mlp_ratio=mlp_ratio)  # the stages' depths: check_psvit_config
        super().__init__(num_classes, global_pool, embed_dim, in_chans)
        depth = sum(depths)
        share_attention = tuple(bool(s) for s in share_attention) if share_attention is not None else (False,) * depth
        norm_layer = partial(nn.LayerNorm, eps=1e-6)

        self.patch_embed = PatchEmbed(img_size=img_size, patch_size=patch_size, in_chans=in_chans,
                                      embed_dim=embed_dim)
        num_patches = self.patch_embed.num_patches
        if pooling == '2d' and self.patch_embed.grid_size[0] != self.patch_embed.grid_size[1]:
            raise ValueError(f'2D token pooling needs a square patch grid, got {self.patch_embed.grid_size}')
        check_psvit_config(depths, num_tokens, share_attention, num_patches, pooling)
        self.depths, self.num_tokens, self.pooling = tuple(depths), tuple(num_tokens), pooling
        self.share_attention = share_attention
        self.stage_of_layer = [s for s, d in enumerate(depths) for _ in range(d)]
        self.first_layers = {sum(depths[:s]): s for s in range(len(depths))}  # first layer of a stage -> stage

        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + num_patches, embed_dim))  # DeiT: the [CLS] has a slot
        self.pos_drop = nn.Dropout(p=pos_drop_rate)
        self.token_pools = nn.ModuleList([TokenPooling(pooling, n, num_prefix_tokens=1) for n in num_tokens])
        dpr = calculate_drop_path_rates(drop_path_rate, depth)  # growing linearly with depth
        self.blocks = nn.ModuleList([
            AttentionSharingBlock(
                embed_dim, num_heads, share=share_attention[i], mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                init_values=init_values, proj_drop=proj_drop_rate, attn_drop=attn_drop_rate, drop_path=dpr[i],
                norm_layer=norm_layer)
            for i in range(depth)])
        self.feature_info = [
            dict(module=f'blocks.{i}', num_chs=embed_dim, reduction=self._reduction(num_tokens[s], patch_size))
            for i, s in enumerate(self.stage_of_layer)]
        self._build_head(drop_rate, norm_layer)
        self.init_weights()

    def _reduction(self, n: int, patch_size: int) -> float:
        return patch_size * self.patch_embed.grid_size[0] / grid_side(n) if self.pooling == '2d' else patch_size

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)  # (B, N_0, D)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)  # (B, 1+N_0, D)
        return self.pos_drop(x + self.pos_embed)

    def _layer(self, i: int, x: torch.Tensor, attn: Optional[torch.Tensor], num_tokens: Sequence[int],
               share: Sequence[bool]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Layer i: pool if it opens a stage, then the block (own or reused attention)."""
        if i in self.first_layers:
            x = self.token_pools[self.first_layers[i]](x, num_tokens[self.first_layers[i]])  # (B, 1+N_s, D)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint(self.blocks[i], x, attn, share[i])
        return self.blocks[i](x, attn, share[i])  # (B, 1+N_s, D), (B, H, 1+N_s, 1+N_s)

    def _run(self, x: torch.Tensor, num_tokens: Optional[Sequence[int]] = None,
             share_attention: Optional[Sequence[bool]] = None, last: Optional[int] = None,
             maps: bool = False) -> Iterator[Layer]:
        """Runs layers 0..last (all if None) of the configuration num_tokens / share_attention (the built one if
        None), yielding each one's `Layer`; its pooling matrix only with maps=True."""
        num_tokens = self.num_tokens if num_tokens is None else tuple(num_tokens)
        share = self.share_attention if share_attention is None else tuple(share_attention)
        if num_tokens != self.num_tokens or share != self.share_attention:
            check_psvit_config(self.depths, num_tokens, share, self.patch_embed.num_patches, self.pooling)
        x, attn = self._embed(x), None
        for i in range(len(self.blocks) if last is None else last + 1):
            pooling = None
            if maps and i in self.first_layers and num_tokens[self.first_layers[i]] + 1 != x.shape[1]:
                pool = self.token_pools[self.first_layers[i]]
                if isinstance(pool, TokenPooling):  # (1+N_s, 1+N_(s-1))
                    pooling = pool.matrix(x.shape[1], num_tokens[self.first_layers[i]])
            x, attn = self._layer(i, x, attn, num_tokens, share)  # (B, 1+N_s, D), (B, H, 1+N_s, 1+N_s)
            yield Layer(x, x[:, 0], attn, None, pooling)

    def _layers(self, x: torch.Tensor, last: Optional[int] = None, maps: bool = False) -> Iterator[Layer]:
        return self._run(x, last=last, maps=maps)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the normalised final tokens (B, 1+N_last, D), [CLS] first."""
        for layer in self._run(x):
            pass
        return self.norm(layer.tokens)

    def forward_subnet(self, x: torch.Tensor, num_tokens: Sequence[int],
                       share_attention: Sequence[bool]) -> torch.Tensor:
        """Logits of another configuration run on these weights (weight-sharing supernet view).

        A layer built with its own attention that is asked to share reuses the previous map through the value
        third of its qkv weights (its q/k weights unused); pooling has no weights, so any token numbers run.
        """
        for layer in self._run(x, num_tokens, share_attention):
            pass
        return self.forward_head(self.norm(layer.tokens))

    def _features(self, layer: Layer) -> torch.Tensor:
        return self.norm(layer.tokens)  # (B, 1+N_last, D), the [CLS] already first


def psvit_macs(
        depths: Sequence[int],
        num_tokens: Sequence[int],
        share_attention: Optional[Sequence[bool]] = None,
        embed_dim: int = 192,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        mlp_ratio: float = 4.,
        num_classes: int = 1000,
) -> int:
    """Multiply-accumulates of one image through a PSViT, counted by hand (matmuls only, as FLOP counters do).

    With T = 1 + N_s tokens (the [CLS] included) and width D, hidden width r D:
        own layer:      qkv 3 T D^2 + scores T^2 D + A V T^2 D + proj T D^2 + MLP 2 r T D^2
        sharing layer:  v     T D^2 +                A V T^2 D + proj T D^2 + MLP 2 r T D^2
    plus the patch embedding N_0 (C p^2) D and the head D x classes. Pooling, norms and softmax are not counted.
    """
    D, hidden = embed_dim, int(embed_dim * mlp_ratio)
    share = share_attention if share_attention is not None else (False,) * sum(depths)
    num_patches = (img_size // patch_size) ** 2
    macs = num_patches * in_chans * patch_size ** 2 * D + D * num_classes
    layer = 0
    for d, n in zip(depths, num_tokens):
        t = 1 + n
        for _ in range(d):
            proj = (1 if share[layer] else 3) * t * D * D + t * D * D + 2 * t * D * hidden
            mix = (1 if share[layer] else 2) * t * t * D
            macs += proj + mix
            layer += 1
    return macs


def _create_psvit(variant: str, pretrained: bool = False, **kwargs) -> PSViT:
    out_indices = kwargs.pop('out_indices', 3)
    return build_model_with_cfg(
        PSViT, variant, pretrained, feature_cfg=dict(out_indices=out_indices, feature_cls='getter'), **kwargs)


def _cfg(**kwargs) -> Dict[str, Any]:
    # no hosted weights: pretrained=True needs pretrained_cfg_overlay=dict(file=PATH)
    return {
        'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': None, 'crop_pct': .875,
        'interpolation': 'bicubic', 'fixed_input_size': True,
        'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD, 'first_conv': 'patch_embed.proj',
        'classifier': 'head', 'paper_ids': 'arXiv:2108.03428', **kwargs,
    }


default_cfgs = generate_default_cfgs({
    'psvit_1d_tiny': _cfg(),
    'psvit_2d_tiny': _cfg(),
    'psvit_2d_small': _cfg(),
})


def pair_sharing(depths: Sequence[int]) -> Tuple[bool, ...]:
    """The second layer of every adjacent pair in a stage shares its partner's map: (F, T, F, T, ...) per stage."""
    return tuple(layer % 2 == 1 for d in depths for layer in range(d))


# Our configurations (the paper's per-stage numbers could not be retrieved): 24 layers in stages of 6, 8 and 10 over
# 14x14 -> 98 or 10x10 -> 7x7 tokens, every second layer sharing. This keeps DeiT's width and heads and spends about
# DeiT's budget on depth: 1.13 / 1.14 GMACs for the Tiny models (DeiT-Tiny 1.25), 4.29 for Small (DeiT-Small 4.60).
_DEPTHS = (6, 8, 10)
_TINY = dict(embed_dim=192, num_heads=3, depths=_DEPTHS, share_attention=pair_sharing(_DEPTHS))
_SMALL = dict(embed_dim=384, num_heads=6, depths=_DEPTHS, share_attention=pair_sharing(_DEPTHS))


@register_model
def psvit_1d_tiny(pretrained: bool = False, **kwargs) -> PSViT:
    """PSViT-1D-Tiny: DeiT-Tiny width, 6/8/10 layers on 196/98/49 tokens pooled along the sequence, pairs sharing."""
    args = dict(_TINY, pooling='1d', num_tokens=(196, 98, 49))
    return _create_psvit('psvit_1d_tiny', pretrained=pretrained, **dict(args, **kwargs))


@register_model
def psvit_2d_tiny(pretrained: bool = False, **kwargs) -> PSViT:
    """PSViT-2D-Tiny: DeiT-Tiny width, 6/8/10 layers on 14x14/10x10/7x7 pooled token grids, pairs sharing."""
    args = dict(_TINY, pooling='2d', num_tokens=(196, 100, 49))
    return _create_psvit('psvit_2d_tiny', pretrained=pretrained, **dict(args, **kwargs))


@register_model
def psvit_2d_small(pretrained: bool = False, **kwargs) -> PSViT:
    """PSViT-2D-Small: DeiT-Small width, 6/8/10 layers on 14x14/10x10/7x7 pooled token grids, pairs sharing."""
    args = dict(_SMALL, pooling='2d', num_tokens=(196, 100, 49))
    return _create_psvit('psvit_2d_small', pretrained=pretrained, **dict(args, **kwargs))
