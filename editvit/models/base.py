"""What EDIT and PSViT share: timm's model interface and one `forward_with_intermediates` schema.

Both are a patch embedding, a stack of `blocks` over the patch tokens (the [CLS] inside the sequence for PSViT,
outside it for EDIT, which refines it with its decoder), a final norm and a linear head. A subclass builds its
modules, then calls `init_weights()`, and yields its layers one at a time from `_layers(x)`; everything else
(the head, timm's feature extraction, the named intermediates) is written once here.

`forward_with_intermediates(x)` returns big_vision's `(logits, out)`; `out` is an `Intermediates` dict whose lists
hold one entry per layer l (token counts N_l change between layers of a pooled model):

    tokens             (B, P + N_l, D)   the self-attention sequence after block l, P prefix tokens first
                                         (P = 1, the [CLS], for PSViT; P = 0 for EDIT's encoder)
    attention          (B, H, P + N_l, P + N_l)  the map block l used; rows = queries, columns = keys
                                         (a sharing layer's is the one it reused)
    cls                (B, D)            the [CLS] after layer l, before the final norm
    decoder_attention  (B, Hd, 1 + N_l)  EDIT's decoder attention, slot 0 = previous [CLS] (zero when the decoder
                                         does not attend to it); None for models without a decoder (PSViT)
    pooling            (P + N_l, P + N_(l-1)) float64 matrix T_l that pooled layer l's input, or None where
                                         the layer does not pool: tokens_in = T_l tokens_out of the previous layer
    shared             bool              whether layer l reused its predecessor's attention map
    token_grid         (h, w) or None    the grid of layer l's patch tokens (None after 1D pooling)
    features           (B, 1 + N_L, D)   the output of `forward_features`: the final [CLS] first, normalised
"""
from functools import partial
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Tuple, TypedDict, Union

import torch
import torch.nn as nn
from timm.layers import trunc_normal_
from timm.models import named_apply
from timm.models._features import feature_take_indices
from timm.models.vision_transformer import init_weights_vit_timm

from .layers.token_pooling import grid_side

GLOBAL_POOLS = ('token', 'avg')


class Intermediates(TypedDict):
    """`forward_with_intermediates`' named outputs (see the module docstring for shapes)."""
    tokens: List[torch.Tensor]
    attention: List[torch.Tensor]
    cls: List[torch.Tensor]
    decoder_attention: Optional[List[torch.Tensor]]
    pooling: List[Optional[torch.Tensor]]
    shared: List[bool]
    token_grid: List[Optional[Tuple[int, int]]]
    features: torch.Tensor


class Layer(NamedTuple):
    """One layer's results from `_layers`; the maps are filled only when asked for (`maps=True`)."""
    tokens: torch.Tensor  # (B, P + N_l, D)
    cls: torch.Tensor  # (B, D)
    attention: Optional[torch.Tensor] = None  # (B, H, P + N_l, P + N_l)
    decoder_attention: Optional[torch.Tensor] = None  # (B, Hd, 1 + N_l)
    pooling: Optional[torch.Tensor] = None  # (P + N_l, P + N_(l-1))


def check_global_pool(global_pool: str) -> str:
    if global_pool not in GLOBAL_POOLS:
        raise ValueError(f"global_pool must be 'token' or 'avg', got {global_pool!r}")
    return global_pool


class TokenClassifier(nn.Module):
    """Base of EDIT and PSViT: a ViT of constant width D that classifies a [CLS] (or the mean patch token).

    Subclasses set `patch_embed`, `pos_embed`, `cls_token`, `blocks`, `pooling` ('1d', '2d' or None), build the head
    with `_build_head` and implement `_layers` and `forward_features`.

    Args:
        num_classes: Classes of the linear head (0 for no head).
        global_pool: 'token' classifies the final [CLS], 'avg' the mean of the final patch tokens.
        embed_dim: Token width D.
        in_chans: Input channels.
    """
    # groups for layer-wise learning-rate decay: what runs after the last block
    _head_group = r'^norm'
    # prefix tokens inside the self-attention sequence
    _sequence_prefix_tokens = 1

    def __init__(self, num_classes: int, global_pool: str, embed_dim: int, in_chans: int = 3) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.global_pool = check_global_pool(global_pool)
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.num_prefix_tokens = 1  # forward_features puts the final [CLS] first
        self.in_chans = in_chans
        self.grad_checkpointing = False
        self.pooling: Optional[str] = None

    def _build_head(self, drop_rate: float, norm_layer: Any) -> None:
        self.norm = norm_layer(self.embed_dim)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(self.embed_dim, self.num_classes) if self.num_classes > 0 else nn.Identity()

    def init_weights(self) -> None:
        trunc_normal_(self.pos_embed, std=.02)
        # std .02 rather than ViT's 1e-6: EDIT's [CLS] is the decoder query through a LayerNorm, and a near-zero
        # vector would be normalised mostly by eps
        trunc_normal_(self.cls_token, std=.02)
        # every Linear: truncated normal std .02, zero bias; other modules keep their own initialisation
        named_apply(partial(init_weights_vit_timm, needs_reset=False), self)

    @torch.jit.ignore
    def no_weight_decay(self) -> set:
        return {'pos_embed', 'cls_token'}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        return dict(stem=r'^cls_token|pos_embed|patch_embed',
                    blocks=[(r'^blocks\.(\d+)', None), (self._head_group, (99999,))])

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        self.num_classes = num_classes
        if global_pool is not None:
            self.global_pool = check_global_pool(global_pool)
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x[:, 0] if self.global_pool == 'token' else x[:, self.num_prefix_tokens:].mean(dim=1)  # (B, D)
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def _layers(self, x: torch.Tensor, last: Optional[int] = None, maps: bool = False) -> Iterator[Layer]:
        """Run layers 0..last (all if None) on images x, yielding each one's `Layer`."""
        raise NotImplementedError

    def _features(self, layer: Layer) -> torch.Tensor:
        """forward_features' output from the last layer: [CLS] first, normalised, (B, 1 + N_L, D)."""
        patches = layer.tokens[:, self._sequence_prefix_tokens:]  # (B, N_L, D)
        return self.norm(torch.cat([layer.cls.unsqueeze(1), patches], dim=1))  # (B, 1 + N_L, D)

    def _token_grid(self, n: int) -> Optional[Tuple[int, int]]:
        """The (h, w) grid of n patch tokens: the patch grid, a square pooled grid, or None after 1D pooling."""
        if n == self.patch_embed.num_patches:
            return tuple(self.patch_embed.grid_size)
        if self.pooling == '1d':
            return None
        return grid_side(n), grid_side(n)

    def forward_with_intermediates(self, x: torch.Tensor) -> Tuple[torch.Tensor, Intermediates]:
        """One forward pass returning the logits and every per-layer quantity by name (see `Intermediates`)."""
        out = dict(tokens=[], attention=[], cls=[], decoder_attention=[], pooling=[], token_grid=[])
        for layer in self._layers(x, maps=True):
            for key in ('tokens', 'attention', 'cls', 'decoder_attention', 'pooling'):
                out[key].append(getattr(layer, key))
            out['token_grid'].append(self._token_grid(layer.tokens.shape[1] - self._sequence_prefix_tokens))
        if all(a is None for a in out['decoder_attention']):
            out['decoder_attention'] = None
        out['shared'] = [bool(getattr(b, 'share', False)) for b in self.blocks]
        out['features'] = self._features(layer)
        return self.forward_head(out['features']), out

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
            output_fmt: 'NCHW' (B, D, h_l, w_l) on each layer's grid or 'NLC' (B, N_l, D).
            intermediates_only: Return only the intermediates.
        """
        if output_fmt not in ('NCHW', 'NLC'):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NLC', got {output_fmt!r}")
        take_indices, max_index = feature_take_indices(len(self.blocks), indices)
        intermediates = []
        for i, layer in enumerate(self._layers(x, last=max_index if stop_early else None)):
            if i not in take_indices:
                continue
            patches = layer.tokens[:, self._sequence_prefix_tokens:]  # (B, N_l, D)
            prefix = layer.cls.unsqueeze(1)  # (B, 1, D)
            if norm:
                patches, prefix = self.norm(patches), self.norm(prefix)
            if output_fmt == 'NCHW':
                grid = self._token_grid(patches.shape[1])
                if grid is None:
                    raise ValueError(f"{patches.shape[1]} tokens pooled in 1D have no grid: use output_fmt='NLC'")
                patches = patches.transpose(1, 2).reshape(patches.shape[0], -1, *grid)  # (B, D, h_l, w_l)
            intermediates.append((patches, prefix) if return_prefix_tokens else patches)
        if intermediates_only:
            return intermediates
        return self._features(layer), intermediates

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
