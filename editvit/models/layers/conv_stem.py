"""A convolutional stem in place of the patchify projection (Xiao et al. 2021, "Early Convolutions Help Transformers
See Better"), for training small ViTs from scratch on small data sets.

    patch p = 2^k:  x (B, C, H, W)
      k times:      x = ReLU(BN(Conv3x3 stride 2 (x)))     widths D/2^k, ..., D/2: (B, D/2, H/p, W/p)
      then:         x = Conv1x1(x)                          (B, D, H/p, W/p), the tokens PatchEmbed returns

The patch embedding (timm's PatchEmbed: one p x p convolution with stride p) keeps its image size, grid and
flattening; only its `proj` is replaced, so every ViT that embeds with PatchEmbed (EDIT, DeiT3, CaiT, PSViT, the
Context Broadcasting and register variants) takes the stem the same way and the transformer is unchanged. The widths
are half those of Xiao et al. (whose last 3x3 convolution is D wide): at D = 128 and p = 4 the stem costs ~2.5% of a
6-layer encoder's multiply-adds.
"""
import torch.nn as nn

from ...errors import ConfigError

STEMS = ('patch', 'conv')


def conv_stem(in_chans: int, embed_dim: int, patch_size: int) -> nn.Sequential:
    """The stem for a patch of patch_size pixels: log2(patch_size) strided 3x3 convolutions, then a 1x1 to embed_dim.

    Raises:
        ConfigError: a patch size that is not a power of two of at least 2, or widths that do not divide.
    """
    stages = patch_size.bit_length() - 1
    if patch_size < 2 or patch_size != 1 << stages:
        raise ConfigError(f"stem 'conv' needs a patch size that is a power of two (2, 4, 8, 16, ...), got "
                          f"{patch_size}; use stem 'patch' for this patch size")
    if embed_dim % (1 << stages):
        raise ConfigError(f"stem 'conv' needs embed_dim divisible by {1 << stages} for patch {patch_size}, got "
                          f"{embed_dim}")
    layers, width_in = [], in_chans
    for i in range(stages):
        width = embed_dim >> (stages - i)  # D/2^k, ..., D/2
        layers += [nn.Conv2d(width_in, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width),
                   nn.ReLU(inplace=True)]
        width_in = width
    layers.append(nn.Conv2d(width_in, embed_dim, 1))
    return nn.Sequential(*layers)


def apply_stem(model: nn.Module, stem: str) -> None:
    """Give `model` the named stem: 'patch' leaves timm's patchify projection, 'conv' replaces it (in place).

    Raises:
        ConfigError: an unknown stem, a model without a PatchEmbed, or an image size the stem cannot tile.
    """
    if stem not in STEMS:
        raise ConfigError(f'stem must be one of {", ".join(STEMS)}, got {stem!r}')
    if stem == 'patch':
        return
    embed = getattr(model, 'patch_embed', None)
    proj = getattr(embed, 'proj', None)
    if not isinstance(proj, nn.Conv2d) or proj.kernel_size != proj.stride or proj.kernel_size[0] != proj.kernel_size[1]:
        raise ConfigError(f"stem 'conv' replaces a ViT's patch embedding; {type(model).__name__} has no square "
                          f"patchify convolution (patch_embed.proj)")
    patch = proj.kernel_size[0]
    size = getattr(embed, 'img_size', None)
    if size is not None and any(s % patch for s in size):
        raise ConfigError(f"stem 'conv' needs an image size divisible by the patch size, got img_size "
                          f"{tuple(size)} and patch {patch}")
    embed.proj = conv_stem(proj.in_channels, proj.out_channels, patch)  # (B, C, H, W) -> (B, D, H/p, W/p)
