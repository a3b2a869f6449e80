"""Attention rollout (Abnar & Zuidema, ACL 2020): how much each input patch flows into a token by layer l.

The residual connection is modelled by mixing the head-averaged attention with the identity, rows renormalised:

    Abar_l = rownorm(0.5 * mean_h A_l + 0.5 * I)          # (B, N_l, N_l)
    R_l    = Abar_l @ T_l @ R_(l-1),   R_(-1) = I          # (B, N_l, N_input) token i at layer l over the input tokens

T_l is the layer's token pooling (PSViT; the identity without it, see `maps`): a pooled token is an average of
the previous tokens, so its rollout is the same average of theirs.

For EDIT the [CLS] is a separate stream (Sec. 3.2): c_l = c_(l-1) + sum_j a_j m_j over m = [c_(l-1); p_l]. Its
rollout r_l is a distribution over [c_0; input patches], with the same half-and-half residual:

    r_0 = (1, 0, ..., 0)                                   # c_0 is the learned [CLS], no patch content
    r_l = 0.5 * r_(l-1) + 0.5 * (a_l[0] * r_(l-1) + [0; a_l[1:] @ R_l])
"""
from typing import List, Optional, Sequence

import torch

from .maps import AttentionMaps


def self_attention_rollout(attention: Sequence[torch.Tensor],
                           pooling: Optional[Sequence[Optional[torch.Tensor]]] = None) -> List[torch.Tensor]:
    """Rollout after every layer from per-layer attention (B, H, N_l, N_l): per layer (B, N_l, N_input).

    Args:
        attention: One map per layer.
        pooling: Per layer T_l (N_l, N_(l-1)) or None (no pooling), as in `AttentionMaps.pooling`.
    """
    pooling = pooling if pooling is not None else [None] * len(attention)
    first = pooling[0].shape[1] if pooling[0] is not None else attention[0].shape[-1]  # N_input
    rollout = torch.eye(first, dtype=attention[0].dtype, device=attention[0].device)  # (N_input, N_input)
    out = []
    for A, T in zip(attention, pooling):
        if T is not None:
            rollout = T.to(rollout) @ rollout  # (B, N_l, N_input) or (N_l, N_input) before the first layer
        eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
        a = 0.5 * A.mean(dim=1) + 0.5 * eye  # (B, N_l, N_l)
        a = a / a.sum(dim=-1, keepdim=True)
        rollout = a @ rollout  # (B, N_l, N_input)
        out.append(rollout)
    return out


def decoder_rollout(decoder_attention: Sequence[torch.Tensor], encoder_rollout: Sequence[torch.Tensor]) -> torch.Tensor:
    """EDIT's [CLS] rollout after every layer, (B, L, 1+N_input) over [c_0; input patches].

    Args:
        decoder_attention: per layer (B, Hd, 1+N_l), slot 0 = previous [CLS].
        encoder_rollout: per layer (B, N_l, N_input) from `self_attention_rollout` of the encoder.
    """
    B, M = decoder_attention[0].shape[0], encoder_rollout[0].shape[-1] + 1
    r = decoder_attention[0].new_zeros(B, M)
    r[:, 0] = 1
    out = []
    for attn, R in zip(decoder_attention, encoder_rollout):
        a = attn.mean(dim=1)  # (B, 1+N_l)
        from_patches = a[:, None, 1:] @ R  # (B, 1, N_input)
        mixed = a[:, :1] * r + torch.cat([r.new_zeros(B, 1), from_patches[:, 0]], dim=-1)  # (B, 1+N_input)
        r = 0.5 * r + 0.5 * mixed
        out.append(r)
    return torch.stack(out, dim=1)  # (B, L, 1+N_input)


def cls_rollout(maps: AttentionMaps) -> torch.Tensor:
    """Rollout of the [CLS] over the input patches after every layer, (B, L, N_input_patches), or, for a model
    without a [CLS], the rollout averaged over the layer's patch tokens."""
    P = maps.num_prefix_tokens
    encoder = self_attention_rollout([a.float() for a in maps.attention], maps.pooling)  # per layer (B, N_l, N_in)
    if maps.decoder_attention is not None:
        return decoder_rollout([a.float() for a in maps.decoder_attention], encoder)[..., 1:]  # (B, L, N_in)
    if maps.has_cls:
        return torch.stack([R[:, 0, P:] for R in encoder], dim=1)  # (B, L, N_input_patches)
    return torch.stack([R[:, P:, P:].mean(dim=1) for R in encoder], dim=1)  # (B, L, N_input_patches)
