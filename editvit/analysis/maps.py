"""`AttentionMaps`: every layer's attention and tokens from one forward pass, and how each layer's tokens relate to
the input patches.

Most ViTs keep the same N tokens in every layer. PSViT's token pooling (and EDIT with `num_tokens`) shrinks them
between stages, so everything here is a list with one entry per layer, of that layer's own size N_l. Pooling is a
linear map of the tokens (an average), so each layer l carries the matrix T_l that made its input tokens from the
previous layer's output (None where the layer does not pool):

    x_l^in = T_l x_(l-1)^out          T_l: (N_l, N_(l-1)), prefix tokens passed through by an identity block

and the product C_l = T_l ... T_0 (N_l, N_input) says which input patches each token of layer l averages. A map over
a pooled layer's tokens is drawn on the input patch grid by `values @ C_l`: each pooled token spreads its attention
over the patches it averages, in proportion to their weights, so the total attention is kept.
"""
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple, Union

import torch

Layers = Union[torch.Tensor, Sequence[torch.Tensor]]


def _per_layer(x: Optional[Layers]) -> Optional[List[torch.Tensor]]:
    """A list of per-layer tensors from a list, or from a tensor stacked on dim 1 (B, L, ...)."""
    if x is None:
        return None
    return list(x.unbind(1)) if isinstance(x, torch.Tensor) else list(x)


@dataclass
class AttentionMaps:
    """The per-layer attention and output tokens of one batch of images.

    `attention`, `tokens` and `decoder_attention` may be given as lists (one tensor per layer) or, when every
    layer has the same tokens, as tensors stacked on dim 1 (B, L, ...); they are stored as lists.

    Attributes:
        attention: Self-attention of every layer, (B, H, N_l, N_l), rows = queries, columns = keys.
        tokens: Output tokens of every layer, (B, N_l, D), in the same order as `attention`.
        num_prefix_tokens: Tokens before the patches in the self-attention sequence (0 for EDIT and CaiT's trunk).
        has_cls: Whether token 0 of the self-attention sequence is [CLS].
        grid_size: The input patch grid (h, w): the layers without pooling have N = num_prefix_tokens + h * w.
        decoder_attention: EDIT only: the decoder's attention per layer, (B, Hd, 1+N_l), slot 0 = previous [CLS].
        pooling: Per layer, T_l (N_l, N_(l-1)) when the layer pools its input tokens, else None; None: no pooling.
        shared: Per layer, whether it reused its predecessor's attention map (PSViT sharing); None: none did.
        token_grids: Per layer, the (h, w) grid of its patch tokens, None for tokens that are not on a grid (1D
            pooling); None: every layer on `grid_size`.
    """
    attention: Layers
    tokens: Layers
    num_prefix_tokens: int
    has_cls: bool
    grid_size: Tuple[int, int]
    decoder_attention: Optional[Layers] = None
    pooling: Optional[List[Optional[torch.Tensor]]] = None
    shared: Optional[List[bool]] = None
    token_grids: Optional[List[Optional[Tuple[int, int]]]] = None
    _to_input: Optional[List[Optional[torch.Tensor]]] = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.attention = _per_layer(self.attention)
        self.tokens = _per_layer(self.tokens)
        self.decoder_attention = _per_layer(self.decoder_attention)
        L = len(self.attention)
        self.pooling = list(self.pooling) if self.pooling is not None else [None] * L
        self.shared = list(self.shared) if self.shared is not None else [False] * L
        self.token_grids = list(self.token_grids) if self.token_grids is not None else [self.grid_size] * L
        lengths = {'tokens': len(self.tokens), 'pooling': len(self.pooling), 'shared': len(self.shared),
                   'token_grids': len(self.token_grids)}
        if self.decoder_attention is not None:
            lengths['decoder_attention'] = len(self.decoder_attention)
        wrong = {k: n for k, n in lengths.items() if n != L}
        if wrong:
            raise ValueError(f'{L} layers of attention but per-layer lists of other lengths: {wrong}')

    @property
    def num_layers(self) -> int:
        return len(self.attention)

    @property
    def num_heads(self) -> int:
        return self.attention[0].shape[1]

    @property
    def batch_size(self) -> int:
        return self.attention[0].shape[0]

    @property
    def num_tokens(self) -> List[int]:
        """N_l, the self-attention sequence length of every layer (prefix tokens included)."""
        return [a.shape[-1] for a in self.attention]

    @property
    def is_pooled(self) -> List[bool]:
        """Per layer: do its patch tokens differ from the input patches (some layer up to it pooled)?"""
        return [c is not None for c in self._input_projections()]

    @property
    def cls_query_source(self) -> Optional[str]:
        """Where the [CLS] query's attention comes from: 'decoder' (EDIT), 'self-attention' (its [CLS] row) or None."""
        if self.decoder_attention is not None:
            return 'decoder'
        return 'self-attention' if self.has_cls else None

    def cls_query_attention(self) -> Optional[List[torch.Tensor]]:
        """The [CLS] query's attention per layer, (B, H, 1+N_l_patches): slot 0 = [CLS], then the patches.

        For EDIT this is the decoder (slot 0 the previous [CLS]); for a ViT with [CLS] the first row of the
        self-attention, without the register/distillation columns (so a row sums to 1 minus their share).
        None when the model has no [CLS] query (CaiT's trunk, register ViTs with global average pooling).
        """
        if self.decoder_attention is not None:
            return self.decoder_attention
        if not self.has_cls:
            return None
        P = self.num_prefix_tokens
        return [torch.cat([a[:, :, 0, :1], a[:, :, 0, P:]], dim=-1) for a in self.attention]  # (B, H, 1+N_l_p)

    def _input_projections(self) -> List[Optional[torch.Tensor]]:
        """Per layer, C_l restricted to the patches, (N_l_patches, N_input_patches), or None where C_l = I."""
        if self._to_input is None:
            P, C, out = self.num_prefix_tokens, None, []
            for T in self.pooling:
                if T is not None:
                    C = T.double() if C is None else T.double() @ C  # (N_l, N_input)
                out.append(None if C is None else C[P:, P:].float())
            self._to_input = out
        return self._to_input

    def to_input_patches(self, values: torch.Tensor, layer: int) -> torch.Tensor:
        """Values over layer's patch tokens (..., N_l_patches) as values over the input patches (..., h * w).

        The attention a pooled token gets is spread over the input patches it averages (so the sum is kept).
        """
        C = self._input_projections()[layer]
        return values if C is None else values @ C.to(values.dtype)  # (..., h * w)
