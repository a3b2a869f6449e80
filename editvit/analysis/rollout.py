"""Attention rollout (Abnar & Zuidema, ACL 2020): how much each input patch flows into a token by layer l.

The residual connection is modelled by mixing the head-averaged attention with the identity, rows renormalised:

    Abar_l = rownorm(0.5 * mean_h A_l + 0.5 * I)          # (B, N, N)
    R_l    = Abar_l @ R_(l-1),   R_0 = I                   # (B, N, N) token i at layer l over the input tokens

For EDIT the [CLS] is a separate stream (Sec. 3.2): c_l = c_(l-1) + sum_j a_j m_j over m = [c_(l-1); p_l]. Its
rollout r_l is a distribution over [c_0; input patches], with the same half-and-half residual:

    r_0 = (1, 0, ..., 0)                                   # c_0 is the learned [CLS], no patch content
    r_l = 0.5 * r_(l-1) + 0.5 * (a_l[0] * r_(l-1) + [0; a_l[1:] @ R_l])
"""
import torch

from .extract import AttentionMaps


def self_attention_rollout(attention: torch.Tensor) -> torch.Tensor:
    """Rollout after every layer from attention (B, L, H, N, N): (B, L, N, N)."""
    B, L, _, N, _ = attention.shape
    eye = torch.eye(N, dtype=attention.dtype, device=attention.device)
    rollout = eye.expand(B, N, N)
    out = []
    for layer in range(L):
        a = 0.5 * attention[:, layer].mean(dim=1) + 0.5 * eye  # (B, N, N)
        a = a / a.sum(dim=-1, keepdim=True)
        rollout = a @ rollout  # (B, N, N)
        out.append(rollout)
    return torch.stack(out, dim=1)  # (B, L, N, N)


def decoder_rollout(decoder_attention: torch.Tensor, encoder_rollout: torch.Tensor) -> torch.Tensor:
    """EDIT's [CLS] rollout after every layer, (B, L, 1+N) over [c_0; input patches].

    Args:
        decoder_attention: (B, L, Hd, 1+N), slot 0 = previous [CLS].
        encoder_rollout: (B, L, N, N) from `self_attention_rollout` of the encoder.
    """
    a = decoder_attention.mean(dim=2)  # (B, L, 1+N)
    B, L, M = a.shape
    r = a.new_zeros(B, M)
    r[:, 0] = 1
    out = []
    for layer in range(L):
        from_patches = a[:, layer, None, 1:] @ encoder_rollout[:, layer]  # (B, 1, N)
        mixed = a[:, layer, :1] * r + torch.cat([r.new_zeros(B, 1), from_patches[:, 0]], dim=-1)  # (B, 1+N)
        r = 0.5 * r + 0.5 * mixed
        out.append(r)
    return torch.stack(out, dim=1)  # (B, L, 1+N)


def cls_rollout(maps: AttentionMaps) -> torch.Tensor:
    """Rollout of the [CLS] over the input patches after every layer, (B, L, N_patches), or, for a model without
    a [CLS], the rollout averaged over the patch tokens."""
    P = maps.num_prefix_tokens
    encoder = self_attention_rollout(maps.attention.float())  # (B, L, N, N)
    if maps.decoder_attention is not None:
        return decoder_rollout(maps.decoder_attention.float(), encoder)[..., 1:]  # (B, L, N)
    if maps.has_cls:
        return encoder[:, :, 0, P:]  # (B, L, N_patches)
    return encoder[:, :, P:, P:].mean(dim=2)  # (B, L, N_patches)
