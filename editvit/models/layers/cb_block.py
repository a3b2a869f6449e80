"""Context Broadcasting (CB): uniform attention added to every block, parameter-free (Hyeon-Woo et al., ICCV 2023,
arXiv 2210.08457, "Scratching Visual Transformer's Back with Uniform Attention").

Uniform attention gives every token the mean of all tokens. CB mixes it in with equal weight:

    CB(x)_i = 1/2 x_i + 1/2 (1/N sum_j x_j)              # x: (B, N, D), no parameters, O(N D) extra operations

and is placed at the end of the MLP of every block, inside the residual branch (before LayerScale and drop path):

    x = x + DropPath(LS_1(MSA(LN(x))))
    x = x + DropPath(LS_2(CB(MLP(LN(x)))))

The formula and its place are those of the authors' one-line implementation (`x = 0.5 * x + 0.5 * x.mean(dim=1,
keepdim=True)` as the last line of the MLP's forward). The mean runs over every token the block sees: the [CLS]
included in a DeiT3 ViT, the patch tokens only in EDIT's encoder (which has no [CLS] among them).

CB_S, the dimension-scaled variant. The paper also reports CB with a learnable scale per channel. Its exact form
could not be retrieved from the sources available to us, so we chose the reading that contains CB as a special
case: a vector lambda in R^D, initialised to 1/2, replaces the two halves,

    CB_S(x)_i = (1 - lambda) * x_i + lambda * mean_j x_j     # D parameters per block; CB_S == CB at initialisation

It adds D parameters per block, so unlike CB its state dict is not the plain model's.
"""
from functools import partial
from typing import Optional

import torch
import torch.nn as nn
from timm.layers import Mlp
from timm.models.vision_transformer import Block


class ContextBroadcast(nn.Module):
    """Mix the mean token (uniform attention) into every token.

    Args:
        dim: Token width D; needed only for the dimension-scaled variant.
        dim_scale: Learn a per-channel mixing weight (CB_S) instead of the fixed 1/2 (CB).
    """

    def __init__(self, dim: Optional[int] = None, dim_scale: bool = False) -> None:
        super().__init__()
        if dim_scale and dim is None:
            raise ValueError('ContextBroadcast(dim_scale=True) needs the token width: pass dim=D')
        self.scale = nn.Parameter(torch.full((dim,), 0.5)) if dim_scale else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = x.mean(dim=1, keepdim=True)  # (B, 1, D) uniform attention: every token weighted 1/N
        if self.scale is None:
            return 0.5 * x + 0.5 * context  # (B, N, D)
        return x + self.scale * (context - x)  # (B, N, D) (1 - lambda) x + lambda context

    def extra_repr(self) -> str:
        return 'dim_scale=True' if self.scale is not None else ''


class ContextBroadcastMlp(Mlp):
    """timm's `Mlp` followed by Context Broadcasting: same parameters and state-dict keys as `Mlp` (for CB)."""

    def __init__(self, *args, cb_dim_scale: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cb = ContextBroadcast(self.fc2.out_features, dim_scale=cb_dim_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cb(super().forward(x))  # (B, N, D)


class ContextBroadcastBlock(Block):
    """timm's pre-norm ViT `Block` with Context Broadcasting at the end of its MLP.

    Takes `Block`'s constructor, so it fits timm's `VisionTransformer(block_fn=...)` and EDIT's encoder
    (`EditVisionTransformer(block_fn=...)`). With `cb_dim_scale=False` its state dict equals `Block`'s, so plain weights
    load unchanged.

    Args:
        cb_dim_scale: Use CB_S (a learnable per-channel weight) instead of CB.
        **kwargs: `Block`'s arguments; `mlp_layer` is fixed to `ContextBroadcastMlp`.
    """

    def __init__(self, *args, cb_dim_scale: bool = False, **kwargs) -> None:
        if kwargs.get('mlp_layer', Mlp) is not Mlp:
            raise ValueError('ContextBroadcastBlock puts CB at the end of timm Mlp; it does not take mlp_layer')
        kwargs['mlp_layer'] = partial(ContextBroadcastMlp, cb_dim_scale=cb_dim_scale)
        super().__init__(*args, **kwargs)
