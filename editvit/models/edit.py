"""EDIT, the Encoder-Decoder Image Transformer (Feng & Sun, arXiv 2504.06738), Sec. 3.2 and Fig. 3.

The encoder is a DeiT3 ViT over patch tokens only (no [CLS] among them, so no patch can sink attention on it).
A learnable [CLS] query is refined after every encoder block by one weight-shared `ClassDecoder`, which attends
over [previous CLS; encoder tokens of that depth]. The final [CLS] goes through the norm and the linear head.

    p_0 = PatchEmbed(x) + pos                     # (B, N, D)
    c_0 = cls_token                               # (B, D)
    for i in 1..L:
        p_i = Block_i(p_(i-1))                    # DeiT3 block: pre-norm MSA + MLP, LayerScale, drop path
        c_i = ClassDecoder(c_(i-1), p_i)          # the same decoder weights at every depth
    logits = head(LN(c_L))
"""
from functools import partial
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type, Union

import torch
import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import PatchEmbed, trunc_normal_
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from timm.models._manipulate import checkpoint
from timm.models.vision_transformer import Block

from .convert import checkpoint_filter_fn
from .layers.class_decoder import ClassDecoder, DecoderNorm
from .layers.ps_block import build_ps_encoder
from .layers.token_pooling import grid_side


class EditVisionTransformer(nn.Module):
    """EDIT: a DeiT3 encoder over patch tokens and a layer-aligned, weight-shared [CLS] decoder.

    Args:
        img_size: Input image size.
        patch_size: Patch size.
        in_chans: Input channels.
        num_classes: Classes of the linear head (0 for no head).
        global_pool: 'token' classifies the final [CLS] (the paper); 'avg' the mean of the final patch tokens.
        embed_dim: Token width D.
        depth: Encoder blocks L, and so decoder steps.
        num_heads: Encoder attention heads.
        mlp_ratio: MLP hidden width over D.
        qkv_bias: Bias on the encoder's qkv projection.
        init_values: LayerScale initial value (DeiT3); None disables LayerScale.
        drop_rate: Dropout before the head.
        pos_drop_rate: Dropout after the position embedding.
        proj_drop_rate: Dropout after attention and MLP projections.
        attn_drop_rate: Attention dropout.
        drop_path_rate: Stochastic depth rate, growing linearly with depth as in DeiT3.
        decoder_heads: Heads of the decoder cross-attention (the paper: 1).
        decoder_query_proj: Give the decoder a query projection (the paper: none).
        decoder_out_proj: Give the decoder an output projection (the paper: none).
        decoder_attend_to_cls: Put the previous [CLS] in the decoder's key/value set (the paper: yes).
        decoder_norm: 'pre' or 'post' normalisation in the decoder (see `ClassDecoder`).
        decoder_folded: Fold the key/value projections onto the query (same function, O(N D) per step);
            False computes keys and values for every token as the paper counts it.
        block_fn: Encoder block class, with timm `Block`'s constructor (variants such as Context Broadcasting).
        share_attention: PSViT attention sharing: per encoder block, reuse the previous block's attention map (no
            q/k projections). None (default): every block computes its own.
        num_tokens: PSViT token pooling: per encoder block, its number of patch tokens (non-increasing); the
            decoder attends to the pooled tokens of each depth. None (default): no pooling.
        pooling: '1d' pools the token sequence, '2d' the patch grid (only read with num_tokens).
    """

    def __init__(
            self,
            img_size: Union[int, Tuple[int, int]] = 224,
            patch_size: int = 16,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = 'token',
            embed_dim: int = 768,
            depth: int = 12,
            num_heads: int = 12,
            mlp_ratio: float = 4.,
            qkv_bias: bool = True,
            init_values: Optional[float] = 1e-6,
            drop_rate: float = 0.,
            pos_drop_rate: float = 0.,
            proj_drop_rate: float = 0.,
            attn_drop_rate: float = 0.,
            drop_path_rate: float = 0.,
            decoder_heads: int = 1,
            decoder_query_proj: bool = False,
            decoder_out_proj: bool = False,
            decoder_attend_to_cls: bool = True,
            decoder_norm: DecoderNorm = 'pre',
            decoder_folded: bool = True,
            block_fn: Type[nn.Module] = Block,
            share_attention: Optional[Sequence[bool]] = None,
            num_tokens: Optional[Sequence[int]] = None,
            pooling: str = '2d',
    ) -> None:
        super().__init__()
        if global_pool not in ('token', 'avg'):
            raise ValueError(f"global_pool must be 'token' or 'avg', got {global_pool!r}")
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.num_prefix_tokens = 1  # forward_features puts the final [CLS] first
        self.in_chans = in_chans
        self.grad_checkpointing = False
        self.pooling = None  # PSViT token pooling of the encoder, set below with num_tokens

        self.patch_embed = PatchEmbed(img_size=img_size, patch_size=patch_size, in_chans=in_chans,
                                      embed_dim=embed_dim)
        num_patches = self.patch_embed.num_patches
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches, embed_dim))  # patches only, no [CLS] slot
        self.pos_drop = nn.Dropout(p=pos_drop_rate)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))  # the learnable [CLS] query c_0

        dpr = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]  # torch.linspace(0, rate, depth)
        self.blocks = nn.Sequential(*[
            block_fn(dim=embed_dim, num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                  init_values=init_values, proj_drop=proj_drop_rate, attn_drop=attn_drop_rate,
                  drop_path=dpr[i], norm_layer=norm_layer)
            for i in range(depth)])
        if share_attention is not None or num_tokens is not None:  # PSViT in the encoder (layers/ps_block.py)
            if block_fn is not Block:
                raise ValueError('share_attention / num_tokens build their own encoder blocks; drop block_fn')
            self.pooling = pooling if num_tokens is not None else None
            self.blocks = build_ps_encoder(
                depth, num_patches, share_attention, num_tokens, pooling, dpr, dim=embed_dim, num_heads=num_heads,
                mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, init_values=init_values, proj_drop=proj_drop_rate,
                attn_drop=attn_drop_rate, norm_layer=norm_layer)
        self.feature_info = [dict(module=f'blocks.{i}', num_chs=embed_dim, reduction=patch_size) for i in range(depth)]
        self.decoder = ClassDecoder(
            embed_dim, num_heads=decoder_heads, qkv_bias=qkv_bias, query_proj=decoder_query_proj,
            out_proj=decoder_out_proj, attend_to_cls=decoder_attend_to_cls, norm=decoder_norm,
            folded=decoder_folded, attn_drop=attn_drop_rate, proj_drop=proj_drop_rate, norm_layer=norm_layer)
        self.norm = norm_layer(embed_dim)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        trunc_normal_(self.pos_embed, std=.02)
        # std .02 rather than ViT's 1e-6: the [CLS] is the decoder query through a LayerNorm, and a near-zero
        # vector would be normalised mostly by eps
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
        # the shared decoder follows every block, so it is grouped with the final norm (the last layer-decay group)
        return dict(
            stem=r'^cls_token|pos_embed|patch_embed',
            blocks=[(r'^blocks\.(\d+)', None), (r'^decoder\.|^norm', (99999,))],
        )

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

    def _check_input(self, x: torch.Tensor) -> None:
        expected = (self.in_chans, *self.patch_embed.img_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            got = 'x'.join(map(str, x.shape[1:])) if x.ndim == 4 else f'a {x.ndim}-d tensor {tuple(x.shape)}'
            raise ValueError(
                f'{type(self).__name__} expects images of shape (B, {expected[0]}, {expected[1]}, {expected[2]}) '
                f'(channels x height x width = {"x".join(map(str, expected))}), got {got}. Resize the images, or '
                f'create the model with img_size=... / in_chans=... matching them (position embeddings of '
                f'pretrained weights are resampled on load).')

    def _embed(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        self._check_input(x)
        # PatchEmbed returns a transposed view, (B, N, D) with strides of (B, D, N), and `+` keeps that layout, which
        # then every block's residual adds keep too: all LayerNorms and linears would read a strided tensor. DeiT3's
        # cat with [CLS] makes its tokens contiguous; here one copy does (measured 2-4% of EDIT-S inference on CPU).
        x = self.patch_embed(x).contiguous()  # (B, N, D)
        x = self.pos_drop(x + self.pos_embed)  # (B, N, D)
        cls = self.cls_token.flatten(1).expand(x.shape[0], -1)  # (B, D)
        return cls, x

    def _step(self, i: int, cls: torch.Tensor, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encoder block i, then the shared decoder on its output: one aligned layer of Fig. 3."""
        x = self.blocks[i](x)  # (B, N, D)
        cls, attn = self.decoder(cls, x)  # (B, D), (B, H, 1+N)
        return cls, x, attn

    def _run_step(self, i: int, cls: torch.Tensor, x: torch.Tensor):
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint(self._step, i, cls, x)
        return self._step(i, cls, x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the normalised tokens (B, 1+N, D): the final [CLS] first, then the final patch tokens."""
        cls, x = self._embed(x)
        for i in range(len(self.blocks)):
            cls, x, _ = self._run_step(i, cls, x)
        return self.norm(torch.cat([cls.unsqueeze(1), x], dim=1))  # (B, 1+N, D)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x[:, 0] if self.global_pool == 'token' else x[:, self.num_prefix_tokens:].mean(dim=1)  # (B, D)
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_with_intermediates(self, x: torch.Tensor) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """One forward pass returning the logits and every per-depth quantity by name (no hooks).

        Returns:
            logits (B, num_classes) and a dict with
              'tokens': encoder tokens after each block, (B, L, N, D);
              'cls': the [CLS] after each decoder step, (B, L, D) (before the final norm);
              'decoder_attention': the decoder's attention per depth and head, (B, L, H, 1+N), slot 0 being the
                  previous [CLS] (zero when the decoder does not attend to it);
              'features': the output of forward_features, (B, 1+N, D).
        """
        cls, x = self._embed(x)
        tokens, classes, attns = [], [], []
        for i in range(len(self.blocks)):
            cls, x, attn = self._run_step(i, cls, x)
            if not self.decoder.attend_to_cls:
                attn = torch.cat([attn.new_zeros(attn.shape[:-1] + (1,)), attn], dim=-1)  # (B, H, 1+N)
            tokens.append(x)
            classes.append(cls)
            attns.append(attn)
        features = self.norm(torch.cat([cls.unsqueeze(1), x], dim=1))  # (B, 1+N, D)
        out = dict(
            tokens=_stack_depths(tokens),  # (B, L, N, D); a list of (B, N_i, D) when pooling changes N
            cls=torch.stack(classes, 1),  # (B, L, D)
            decoder_attention=_stack_depths(attns),  # (B, L, H, 1+N); a list of (B, H, 1+N_i) when pooling
            features=features,
        )
        return self.forward_head(features), out

    def decoder_attention(self, x: torch.Tensor) -> torch.Tensor:
        """The decoder's attention at every depth, averaged over decoder heads: (B, L, 1+N), slot 0 = previous [CLS].

        Slots 1.. follow the patch grid in row-major order; reshape to (B, L, H/p, W/p) for a sequential map.
        """
        return self.forward_with_intermediates(x)[1]['decoder_attention'].mean(dim=2)

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
        """timm's feature-extraction interface: patch tokens of the chosen blocks (the [CLS] of that depth as the
        prefix token when return_prefix_tokens=True).

        Args:
            x: Input images (B, C, H, W).
            indices: Take the last n blocks if int, all if None, the listed blocks if a sequence.
            return_prefix_tokens: Return (patch tokens, [CLS] (B, 1, D)) pairs.
            norm: Apply the final norm to the intermediates.
            stop_early: Stop after the last block needed.
            output_fmt: 'NCHW' (B, D, H/p, W/p) or 'NLC' (B, N, D).
            intermediates_only: Return only the intermediates.
        """
        if output_fmt not in ('NCHW', 'NLC'):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NLC', got {output_fmt!r}")
        take_indices, max_index = feature_take_indices(len(self.blocks), indices)
        B = x.shape[0]
        cls, x = self._embed(x)
        intermediates, prefixes = [], []
        last = max_index + 1 if stop_early else len(self.blocks)
        for i in range(last):
            cls, x, _ = self._run_step(i, cls, x)
            if i in take_indices:
                intermediates.append(self.norm(x) if norm else x)
                prefixes.append((self.norm(cls) if norm else cls).unsqueeze(1))
        if output_fmt == 'NCHW':
            intermediates = [y.reshape(B, *self._token_grid(y.shape[1]), -1).permute(0, 3, 1, 2).contiguous()
                             for y in intermediates]
        if return_prefix_tokens:
            intermediates = list(zip(intermediates, prefixes))
        if intermediates_only:
            return intermediates
        return self.norm(torch.cat([cls.unsqueeze(1), x], dim=1)), intermediates

    def _token_grid(self, n: int) -> Tuple[int, int]:
        """The (h, w) grid of n encoder tokens: the patch grid, or a square pooled grid (2D token pooling)."""
        if n == self.patch_embed.num_patches:
            return tuple(self.patch_embed.grid_size)
        if self.pooling == '1d':
            raise ValueError(f"{n} tokens pooled in 1D have no grid: use output_fmt='NLC'")
        return grid_side(n), grid_side(n)

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



def _stack_depths(xs: List[torch.Tensor]) -> Union[torch.Tensor, List[torch.Tensor]]:
    """Stack per-depth tensors on dim 1; with token pooling their sizes differ, so they stay a list."""
    return torch.stack(xs, 1) if all(x.shape == xs[0].shape for x in xs) else xs


def _create_edit(variant: str, pretrained: bool = False, **kwargs) -> EditVisionTransformer:
    out_indices = kwargs.pop('out_indices', 3)
    return build_model_with_cfg(
        EditVisionTransformer, variant, pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=out_indices, feature_cls='getter'),
        **kwargs,
    )


def _cfg(**kwargs) -> Dict[str, Any]:
    # no hosted weights: pretrained=True needs pretrained_cfg_overlay=dict(file=PATH)
    return {
        'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': None,
        'crop_pct': 1.0, 'interpolation': 'bicubic', 'fixed_input_size': True,  # eval crop ratio 1.0 (Table 2)
        'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'patch_embed.proj', 'classifier': 'head',
        'paper_ids': 'arXiv:2504.06738', 'license': 'apache-2.0',
        **kwargs,
    }


default_cfgs = generate_default_cfgs({
    'edit_tiny_patch16_224': _cfg(),
    'edit_small_patch16_224': _cfg(),
    'edit_base_patch16_224': _cfg(),
    'edit_small_patch16_384': _cfg(input_size=(3, 384, 384)),
    'edit_base_patch16_384': _cfg(input_size=(3, 384, 384)),
})

# Table 1: Tiny takes DeiT-Tiny's width and heads with DeiT3's LayerScale; Small and Base follow DeiT3.
_TINY = dict(patch_size=16, embed_dim=192, depth=12, num_heads=3, init_values=1e-6)
_SMALL = dict(patch_size=16, embed_dim=384, depth=12, num_heads=6, init_values=1e-6)
_BASE = dict(patch_size=16, embed_dim=768, depth=12, num_heads=12, init_values=1e-6)


@register_model
def edit_tiny_patch16_224(pretrained: bool = False, **kwargs) -> EditVisionTransformer:
    """EDIT-Tiny @ 224 (192 wide, 3 heads, 12 layers; Table 1: 5.82M parameters, 1.42 GFLOPs)."""
    return _create_edit('edit_tiny_patch16_224', pretrained=pretrained, **dict(_TINY, **kwargs))


@register_model
def edit_small_patch16_224(pretrained: bool = False, **kwargs) -> EditVisionTransformer:
    """EDIT-Small @ 224 (384 wide, 6 heads, 12 layers; Table 1: 22.30M parameters, 5.28 GFLOPs)."""
    return _create_edit('edit_small_patch16_224', pretrained=pretrained, **dict(_SMALL, **kwargs))


@register_model
def edit_base_patch16_224(pretrained: bool = False, **kwargs) -> EditVisionTransformer:
    """EDIT-Base @ 224 (768 wide, 12 heads, 12 layers; Table 1: 87.76M parameters, 20.27 GFLOPs)."""
    return _create_edit('edit_base_patch16_224', pretrained=pretrained, **dict(_BASE, **kwargs))


@register_model
def edit_small_patch16_384(pretrained: bool = False, **kwargs) -> EditVisionTransformer:
    """EDIT-Small @ 384 (Table 3: 14.5 GFLOPs), e.g. fine-tuned from 224 weights with a resampled pos. embed."""
    return _create_edit('edit_small_patch16_384', pretrained=pretrained, **dict(_SMALL, img_size=384, **kwargs))


@register_model
def edit_base_patch16_384(pretrained: bool = False, **kwargs) -> EditVisionTransformer:
    """EDIT-Base @ 384 (Table 3: 57.5 GFLOPs), e.g. fine-tuned from 224 weights with a resampled pos. embed."""
    return _create_edit('edit_base_patch16_384', pretrained=pretrained, **dict(_BASE, img_size=384, **kwargs))
