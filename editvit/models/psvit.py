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
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import PatchEmbed, trunc_normal_
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from timm.models._manipulate import checkpoint

from .layers.shared_attention import AttentionSharingBlock
from .layers.token_pooling import PoolingMode, TokenPooling, grid_side


def check_psvit_config(depths: Sequence[int], num_tokens: Sequence[int], share_attention: Sequence[bool],
                       num_patches: int, pooling: PoolingMode) -> None:
    """Raise a ValueError naming the problem if the stages, token numbers or sharing pattern do not fit."""
    if len(depths) != len(num_tokens) or not depths:
        raise ValueError(f'depths {tuple(depths)} and num_tokens {tuple(num_tokens)} must give one entry per stage')
    if any(d < 1 for d in depths):
        raise ValueError(f'every stage needs at least one layer, got depths {tuple(depths)}')
    previous = num_patches
    for s, n in enumerate(num_tokens):
        if not 1 <= n <= previous:
            raise ValueError(f'stage {s} asks for {n} tokens but receives {previous}: token numbers may only shrink '
                             f'(the patch grid has {num_patches})')
        if pooling == '2d':
            grid_side(n)
        previous = n
    if len(share_attention) != sum(depths):
        raise ValueError(f'share_attention needs one entry per layer ({sum(depths)}), got {len(share_attention)}')
    for i in stage_starts(depths, num_tokens, num_patches):
        if share_attention[i]:
            raise ValueError(f'layer {i} cannot share attention: it is the first layer of the model or of a stage '
                             f'whose token count changes, so no previous map of its size exists')


def stage_starts(depths: Sequence[int], num_tokens: Sequence[int], num_patches: int) -> List[int]:
    """Layers that have no previous attention map of their size: layer 0 and every layer right after pooling."""
    starts, layer, previous = [0], 0, num_patches
    for d, n in zip(depths, num_tokens):
        if layer > 0 and n != previous:
            starts.append(layer)
        layer, previous = layer + d, n
    return starts


class PSViT(nn.Module):
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
        super().__init__()
        if global_pool not in ('token', 'avg'):
            raise ValueError(f"global_pool must be 'token' or 'avg', got {global_pool!r}")
        depth = sum(depths)
        share_attention = tuple(bool(s) for s in share_attention) if share_attention is not None else (False,) * depth
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.num_prefix_tokens = 1
        self.grad_checkpointing = False

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
        dpr = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList([
            AttentionSharingBlock(
                embed_dim, num_heads, share=share_attention[i], mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                init_values=init_values, proj_drop=proj_drop_rate, attn_drop=attn_drop_rate, drop_path=dpr[i],
                norm_layer=norm_layer)
            for i in range(depth)])
        self.feature_info = [
            dict(module=f'blocks.{i}', num_chs=embed_dim, reduction=self._reduction(num_tokens[s], patch_size))
            for i, s in enumerate(self.stage_of_layer)]
        self.norm = norm_layer(embed_dim)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def _reduction(self, n: int, patch_size: int) -> float:
        return patch_size * self.patch_embed.grid_size[0] / grid_side(n) if self.pooling == '2d' else patch_size

    def _init_weights(self) -> None:
        trunc_normal_(self.pos_embed, std=.02)
        trunc_normal_(self.cls_token, std=.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @torch.jit.ignore
    def no_weight_decay(self) -> set:
        return {'pos_embed', 'cls_token'}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        return dict(stem=r'^cls_token|pos_embed|patch_embed', blocks=[(r'^blocks\.(\d+)', None), (r'^norm', (99999,))])

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        self.num_classes = num_classes
        if global_pool is not None:
            if global_pool not in ('token', 'avg'):
                raise ValueError(f"global_pool must be 'token' or 'avg', got {global_pool!r}")
            self.global_pool = global_pool
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()

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
             share_attention: Optional[Sequence[bool]] = None, last: Optional[int] = None):
        """Yields (layer, tokens, attention map) for layers 0..last."""
        num_tokens = self.num_tokens if num_tokens is None else tuple(num_tokens)
        share = self.share_attention if share_attention is None else tuple(share_attention)
        if num_tokens != self.num_tokens or share != self.share_attention:
            check_psvit_config(self.depths, num_tokens, share, self.patch_embed.num_patches, self.pooling)
        x, attn = self._embed(x), None
        for i in range(len(self.blocks) if last is None else last + 1):
            x, attn = self._layer(i, x, attn, num_tokens, share)
            yield i, x, attn

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the normalised final tokens (B, 1+N_last, D), [CLS] first."""
        for _, x, _ in self._run(x):
            pass
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x[:, 0] if self.global_pool == 'token' else x[:, self.num_prefix_tokens:].mean(dim=1)  # (B, D)
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_subnet(self, x: torch.Tensor, num_tokens: Sequence[int],
                       share_attention: Sequence[bool]) -> torch.Tensor:
        """Logits of another configuration run on these weights (weight-sharing supernet view).

        A layer built with its own attention that is asked to share reuses the previous map through the value
        third of its qkv weights (its q/k weights unused); pooling has no weights, so any token numbers run.
        """
        for _, x, _ in self._run(x, num_tokens, share_attention):
            pass
        return self.forward_head(self.norm(x))

    def forward_with_intermediates(self, x: torch.Tensor) -> Tuple[torch.Tensor, Dict[str, List[torch.Tensor]]]:
        """One forward pass returning the logits and, per layer, the tokens and the attention map it used.

        Returns:
            logits (B, num_classes) and a dict with lists (one entry per layer; sizes change between stages):
              'tokens': (B, 1+N_s, D) after each block, [CLS] first;
              'attention': (B, H, 1+N_s, 1+N_s), the map each layer used (a sharing layer's is its predecessor's);
              'features': the output of forward_features, (B, 1+N_last, D).
        """
        tokens, attns = [], []
        for _, x, attn in self._run(x):
            tokens.append(x)
            attns.append(attn)
        features = self.norm(x)
        return self.forward_head(features), dict(tokens=tokens, attention=attns, features=features)

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            return_prefix_tokens: bool = False,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = 'NCHW',
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """timm's feature-extraction interface: patch tokens of the chosen blocks.

        Args:
            x: Input images (B, C, H, W).
            indices: Take the last n blocks if int, all if None, the listed blocks if a sequence.
            return_prefix_tokens: Return (patch tokens, [CLS] (B, 1, D)) pairs.
            norm: Apply the final norm to the intermediates.
            stop_early: Stop after the last block needed.
            output_fmt: 'NCHW' (B, D, h_s, w_s) on each stage's grid (2D pooling only) or 'NLC' (B, N_s, D).
            intermediates_only: Return only the intermediates.
        """
        if output_fmt not in ('NCHW', 'NLC'):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NLC', got {output_fmt!r}")
        if output_fmt == 'NCHW' and self.pooling == '1d':
            raise ValueError("1D-pooled tokens have no grid: use output_fmt='NLC'")
        take_indices, max_index = feature_take_indices(len(self.blocks), indices)
        intermediates = []
        for i, x, _ in self._run(x, last=max_index if stop_early else None):
            if i in take_indices:
                y = self.norm(x) if norm else x
                patches, prefix = y[:, 1:], y[:, :1]  # (B, N_s, D), (B, 1, D)
                if output_fmt == 'NCHW':
                    side = grid_side(patches.shape[1])
                    patches = patches.transpose(1, 2).reshape(y.shape[0], -1, side, side)  # (B, D, h_s, w_s)
                intermediates.append((patches, prefix) if return_prefix_tokens else patches)
        if intermediates_only:
            return intermediates
        return self.norm(x), intermediates

    def prune_intermediate_layers(
            self, indices: Union[int, List[int]] = 1, prune_norm: bool = False, prune_head: bool = True,
    ) -> List[int]:
        take_indices, max_index = feature_take_indices(len(self.blocks), indices)
        self.blocks = self.blocks[:max_index + 1]
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0)
        return take_indices


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
