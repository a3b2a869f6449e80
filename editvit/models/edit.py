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
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple, Type, Union

import torch
import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import PatchEmbed, calculate_drop_path_rates
from timm.models import build_model_with_cfg, checkpoint, generate_default_cfgs, register_model
from timm.models.vision_transformer import Block

from .base import Layer, TokenClassifier
from .convert import checkpoint_filter_fn
from .layers.block_attention import block_with_attention
from .layers.class_decoder import ClassDecoder, DecoderNorm
from .sizes import check_vit_sizes


class EditVisionTransformer(TokenClassifier):
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
        init_values: LayerScale initial value (DeiT3); 0 or None disables LayerScale.
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
    """

    _head_group = r'^decoder\.|^norm'  # the shared decoder follows every block: grouped with the final norm
    _sequence_prefix_tokens = 0  # no [CLS] among the encoder tokens

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
    ) -> None:
        check_vit_sizes(img_size=img_size, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim, depth=depth,
                        num_heads=num_heads, mlp_ratio=mlp_ratio, decoder_heads=decoder_heads)
        super().__init__(num_classes, global_pool, embed_dim, in_chans)
        norm_layer = partial(nn.LayerNorm, eps=1e-6)

        self.patch_embed = PatchEmbed(img_size=img_size, patch_size=patch_size, in_chans=in_chans,
                                      embed_dim=embed_dim)
        num_patches = self.patch_embed.num_patches
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches, embed_dim))  # patches only, no [CLS] slot
        self.pos_drop = nn.Dropout(p=pos_drop_rate)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))  # the learnable [CLS] query c_0

        self.blocks = self._build_encoder(
            block_fn, depth, calculate_drop_path_rates(drop_path_rate, depth), dim=embed_dim, num_heads=num_heads,
            mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, init_values=init_values, proj_drop=proj_drop_rate,
            attn_drop=attn_drop_rate, norm_layer=norm_layer)
        self.feature_info = [dict(module=f'blocks.{i}', num_chs=embed_dim, reduction=patch_size) for i in range(depth)]
        self.decoder = ClassDecoder(
            embed_dim, num_heads=decoder_heads, qkv_bias=qkv_bias, query_proj=decoder_query_proj,
            out_proj=decoder_out_proj, attend_to_cls=decoder_attend_to_cls, norm=decoder_norm,
            folded=decoder_folded, attn_drop=attn_drop_rate, proj_drop=proj_drop_rate, norm_layer=norm_layer)
        self._build_head(drop_rate, norm_layer)
        self.init_weights()

    def _build_encoder(self, block_fn: Type[nn.Module], depth: int, drop_path: Sequence[float],
                       **block_kwargs) -> nn.Sequential:
        """The encoder: depth blocks of block_fn, stochastic depth growing linearly with depth as in DeiT3."""
        return nn.Sequential(*[block_fn(drop_path=drop_path[i], **block_kwargs) for i in range(depth)])

    def _check_input(self, x: torch.Tensor) -> None:
        if not torch.jit.is_scripting():
            check_image_shape(x, (self.in_chans, *self.patch_embed.img_size), type(self).__name__)

    def _embed(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        self._check_input(x)
        # PatchEmbed returns a transposed view, (B, N, D) with strides of (B, D, N), and `+` keeps that layout, which
        # then every block's residual adds keep too: all LayerNorms and linears would read a strided tensor. DeiT3's
        # cat with [CLS] makes its tokens contiguous; here one copy does (measured 2-4% of EDIT-S inference on CPU).
        x = self.patch_embed(x).contiguous()  # (B, N, D)
        x = self.pos_drop(x + self.pos_embed)  # (B, N, D)
        cls = self.cls_token.flatten(1).expand(x.shape[0], -1)  # (B, D)
        return cls, x

    def _step(self, block: nn.Module, cls: torch.Tensor, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """An encoder block, then the shared decoder on its output: one aligned layer of Fig. 3."""
        x = block(x)  # (B, N, D)
        cls, _ = self.decoder(cls, x)  # (B, D)
        return cls, x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the normalised tokens (B, 1+N, D): the final [CLS] first, then the final patch tokens."""
        cls, x = self._embed(x)
        for block in self.blocks:
            if self.grad_checkpointing and not torch.jit.is_scripting():
                cls, x = checkpoint(self._step, block, cls, x)
            else:  # `_step` written out: TorchScript takes no module as an argument
                x = block(x)  # (B, N, D)
                cls, _ = self.decoder(cls, x)  # (B, D)
        return self.norm(torch.cat([cls.unsqueeze(1), x], dim=1))  # (B, 1+N, D)

    def _layers(self, x: torch.Tensor, last: Optional[int] = None, maps: bool = False) -> Iterator[Layer]:
        cls, x = self._embed(x)
        for block in self.blocks[:None if last is None else last + 1]:
            if not maps:
                cls, x = checkpoint(self._step, block, cls, x) if self.grad_checkpointing else self._step(block, cls, x)
                yield Layer(x, cls)
                continue
            pooling = self._pooling_matrix(block, x.shape[1])  # (N_l, N_(l-1)) or None
            x, attn = block_with_attention(block, x)  # (B, N_l, D), (B, H, N_l, N_l)
            cls, dec = self.decoder(cls, x)  # (B, D), (B, Hd, 1+N_l)
            if not self.decoder.attend_to_cls:
                dec = torch.cat([dec.new_zeros(dec.shape[:-1] + (1,)), dec], dim=-1)  # (B, Hd, 1+N_l)
            yield Layer(x, cls, attn, dec, pooling)

    def _pooling_matrix(self, block: nn.Module, num_in: int) -> Optional[torch.Tensor]:
        """The matrix by which block pools its num_in input tokens; None: it does not pool (the paper's EDIT)."""
        return None

    def decoder_attention(self, x: torch.Tensor) -> torch.Tensor:
        """The decoder's attention at every depth, averaged over decoder heads: (B, L, 1+N), slot 0 = previous [CLS].

        Slots 1.. follow the patch grid in row-major order; reshape to (B, L, H/p, W/p) for a sequential map.
        Without token pooling only (pooled depths differ in N: read `forward_with_intermediates` instead).
        """
        return torch.stack(self.forward_with_intermediates(x)[1]['decoder_attention'], 1).mean(dim=2)


@torch.fx.wrap
def check_image_shape(x: torch.Tensor, expected: Tuple[int, int, int], model_name: str) -> None:
    """Raise a ValueError naming the shape x (B, C, H, W) should have; a leaf for FX tracing (shapes are symbolic)."""
    if x.ndim != 4 or tuple(x.shape[1:]) != expected:
        got = 'x'.join(map(str, x.shape[1:])) if x.ndim == 4 else f'a {x.ndim}-d tensor {tuple(x.shape)}'
        raise ValueError(
            f'{model_name} expects images of shape (B, {expected[0]}, {expected[1]}, {expected[2]}) '
            f'(channels x height x width = {"x".join(map(str, expected))}), got {got}. Resize the images, or '
            f'create the model with img_size=... / in_chans=... matching them (position embeddings of '
            f'pretrained weights are resampled on load).')


def _create_edit(variant: str, pretrained: bool = False, model_cls: Type[EditVisionTransformer] = EditVisionTransformer,
                 **kwargs) -> EditVisionTransformer:
    out_indices = kwargs.pop('out_indices', 3)
    return build_model_with_cfg(
        model_cls, variant, pretrained,
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
