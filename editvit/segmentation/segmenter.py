"""Segmenter (Strudel et al. 2021): a ViT backbone's patch tokens decoded into class masks, upsampled to the input.

Any editvit/timm ViT works as the backbone (paper Table 5: EDIT, DeiT3, ViT, DeiT): `forward_features` gives
(B, P+N, D) tokens whose first `num_prefix_tokens` P are dropped (EDIT's final [CLS], DeiT3's [CLS]); the N patch
tokens go to the decoder. As in Segmenter's official code (segm/model/segmenter.py) the masks at patch resolution
are upsampled bilinearly to the input size.
"""
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from ..models.factory import create_model
from ..weights import load_model_weights, read_state_dict
from .mask_transformer import LinearDecoder, MaskTransformer

DECODERS = ('mask_transformer', 'linear')


class Segmenter(nn.Module):
    """A ViT backbone and a Segmenter decoder: images (B, 3, H, W) -> per-pixel class logits (B, K, H, W).

    Args:
        encoder: The backbone, with `forward_features`, `num_prefix_tokens` and `patch_embed` (timm ViT, EDIT).
        decoder: A `MaskTransformer` or `LinearDecoder`.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.num_classes = decoder.num_classes

    @property
    def img_size(self) -> tuple:
        """The (H, W) the backbone takes; inference cuts larger images into windows of this size."""
        return tuple(self.encoder.patch_embed.img_size)

    @torch.jit.ignore
    def no_weight_decay(self) -> set:
        return {f'encoder.{k}' for k in self.encoder.no_weight_decay()} | \
            {f'decoder.{k}' for k in getattr(self.decoder, 'no_weight_decay', set)()}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's patch tokens (B, N, D), prefix tokens dropped."""
        return self.encoder.forward_features(x)[:, self.encoder.num_prefix_tokens:]  # (B, N, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[-2:]
        tokens = self.forward_features(x)  # (B, N, D)
        masks = self.decoder(tokens, tuple(self.encoder.patch_embed.grid_size))  # (B, K, H/p, W/p)
        return F.interpolate(masks, size=(H, W), mode='bilinear', align_corners=False)  # (B, K, H, W)


def _backbone_state_dict(source: Union[str, Path], encoder: nn.Module) -> Dict[str, torch.Tensor]:
    """The backbone weights of a classification checkpoint: its classifier dropped (the segmentation decoder
    replaces it), the rest left for the backbone's checkpoint filter (DeiT3 -> EDIT, position embedding resampling)."""
    state_dict = read_state_dict(source)
    classifier = encoder.pretrained_cfg.get('classifier', 'head')
    prefixes = tuple(f'{c}.' for c in ((classifier,) if isinstance(classifier, str) else classifier))
    return {k: v for k, v in state_dict.items() if not k.startswith(prefixes)}


def create_segmenter(
        backbone: str,
        num_classes: int,
        img_size: int,
        decoder: str = 'mask_transformer',
        backbone_kwargs: Optional[Mapping[str, Any]] = None,
        drop_path: float = 0.1,
        decoder_depth: int = 2,
        decoder_dropout: float = 0.1,
        backbone_weights: Optional[Union[str, Path]] = None,
) -> Segmenter:
    """A Segmenter on a timm/editvit backbone at any resolution.

    Args:
        backbone: timm model name, e.g. edit_small_patch16_224 or deit3_small_patch16_224.
        num_classes: Segmentation classes K.
        img_size: Backbone input size (Segmenter on ADE20K: 512 crops).
        decoder: 'mask_transformer' or 'linear'.
        backbone_kwargs: Extra timm.create_model arguments of the backbone (patch_size=8, embed_dim=64, ...).
        drop_path: Stochastic depth of the backbone (Segmenter: 0.1).
        decoder_depth: Mask Transformer layers (Segmenter: 2).
        decoder_dropout: Mask Transformer dropout (Segmenter: 0.1).
        backbone_weights: An editvit classification checkpoint or a timm DeiT3 checkpoint; its head is dropped and
            its position embedding resampled to img_size (e.g. 224 ImageNet weights for 512 crops).
    """
    if decoder not in DECODERS:
        raise ConfigError(f'decoder must be one of {", ".join(DECODERS)}, got {decoder!r}')
    kwargs = dict(backbone_kwargs or {})
    kwargs['img_size'] = img_size
    encoder = create_model(backbone, 0, kwargs, drop_path=drop_path)
    if backbone_weights is not None:
        load_model_weights(encoder, _backbone_state_dict(backbone_weights, encoder), name=str(backbone_weights))
    width = encoder.embed_dim
    if decoder == 'linear':
        head: nn.Module = LinearDecoder(num_classes, width)
    else:
        # Segmenter: decoder width = backbone width, heads = width / 64 (at least one for tiny test models)
        head = MaskTransformer(num_classes, width, width, depth=decoder_depth, num_heads=max(width // 64, 1),
                               mlp_ratio=4., dropout=decoder_dropout)
    return Segmenter(encoder, head)
