"""The token side of the folded decoder attention, with a hand-written backward.

For a query already moved into token space, q_k = W_k^T q (one per head), the decoder attends over
[x_cls; x_1..x_N] and mixes the tokens themselves (W_v is applied afterwards, see `ClassDecoder`):

    s = [s_cls, q_k . x_j] + s_0    # (B, H, 1+N); s_0 (B, H, 1) is the same for every slot
    a = softmax(s)                  # (B, H, 1+N)
    m = a_cls x_cls + sum_j a_j x_j # (B, H, D)

Autograd computes d/dx as two rank-one batched products, (B, N, 1) @ (B, 1, D) twice, then adds them, which is
several times slower on CPU than the forward itself and dominates the decoder's training cost. Here the two are one
batched product with an inner dimension of 2H: [ds_tok; a_tok]^T @ [q_k; dm]. The function is computed in the dtype
of x with autocast off (under autocast x is the float32 output of a LayerNorm; these are O(N D) operations).
"""
from contextlib import nullcontext
from typing import ContextManager, Optional, Tuple

import torch


def autocast_off(device_type: str) -> ContextManager:
    """Autocast disabled on device_type; nothing to disable where autocast does not exist (the meta device)."""
    try:
        return torch.autocast(device_type, enabled=False)
    except RuntimeError:  # torch.autocast refuses device types without autocast
        return nullcontext()


class FoldedTokenAttention(torch.autograd.Function):
    """Attention of per-head token-space queries over [x_cls; x] and the attention-weighted mix of those vectors."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, q_k: torch.Tensor, s_cls: Optional[torch.Tensor],
                x_cls: Optional[torch.Tensor], s_0: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            x: Tokens (B, N, D).
            q_k: Queries in token space (B, H, D).
            s_cls: Score of the extra slot 0 (B, H, 1), or None for no extra slot.
            x_cls: Vector of the extra slot (B, D), or None.
            s_0: A score offset shared by all slots (B, H, 1), or None. It cancels in the softmax (its gradient is
                zero); it is an input so that parameters behind it, such as the key bias, receive that gradient.

        Returns:
            attn (B, H, M) with M = 1+N (slot 0 = x_cls) or N, and mixed (B, H, D).
        """
        with autocast_off(x.device.type):
            q_k = q_k.to(x.dtype)  # the saved q_k is in x's dtype; its gradient goes back in its own
            scores = q_k @ x.transpose(1, 2)  # (B, H, N)
            if s_cls is not None:
                scores = torch.cat([s_cls.to(x.dtype), scores], dim=-1)  # (B, H, 1+N)
            if s_0 is not None:
                scores = scores + s_0.to(x.dtype)  # (B, H, M)
            attn = scores.softmax(dim=-1)  # (B, H, M)
            a_tok = attn[..., 1:] if s_cls is not None else attn  # (B, H, N)
            mixed = a_tok @ x  # (B, H, D)
            if s_cls is not None:
                mixed = mixed + attn[..., :1] * x_cls.to(x.dtype).unsqueeze(1)  # (B, H, D)
        ctx.save_for_backward(x, q_k, attn, x_cls if s_cls is not None else None)
        ctx.has_cls = s_cls is not None
        ctx.dtypes = [None if t is None else t.dtype for t in (q_k, s_cls, x_cls, s_0)]
        return attn, mixed

    @staticmethod
    def backward(ctx, g_attn: torch.Tensor, g_mixed: torch.Tensor):
        x, q_k, attn, x_cls = ctx.saved_tensors
        with autocast_off(x.device.type):
            g_attn = g_attn.to(x.dtype)
            g_mixed = g_mixed.to(x.dtype)
            a_tok = attn[..., 1:] if ctx.has_cls else attn  # (B, H, N)
            g_a = g_mixed @ x.transpose(1, 2)  # (B, H, N) d mixed / d a_tok
            if ctx.has_cls:
                x_cls = x_cls.to(x.dtype)
                g_a = torch.cat([(g_mixed * x_cls.unsqueeze(1)).sum(-1, keepdim=True), g_a], dim=-1)  # (B, H, 1+N)
            g_a = g_a + g_attn
            g_s = attn * (g_a - (g_a * attn).sum(-1, keepdim=True))  # (B, H, M) softmax backward
            g_s_tok = g_s[..., 1:] if ctx.has_cls else g_s  # (B, H, N)
            g_q_k = g_s_tok @ x  # (B, H, D)
            # d x_j = sum_h ds_hj q_k,h + a_hj dm_h: one product with inner dimension 2H
            g_x = torch.cat([g_s_tok, a_tok], 1).transpose(1, 2) @ torch.cat([q_k, g_mixed], 1)  # (B, N, D)
            g_s_cls = g_x_cls = None
            if ctx.has_cls:
                g_s_cls = g_s[..., :1].to(ctx.dtypes[1])  # (B, H, 1)
                g_x_cls = (attn[..., :1] * g_mixed).sum(1).to(ctx.dtypes[2])  # (B, D)
            g_s_0 = g_s.sum(-1, keepdim=True).to(ctx.dtypes[3]) if ctx.dtypes[3] is not None else None  # (B, H, 1)
        return g_x, g_q_k.to(ctx.dtypes[0]), g_s_cls, g_x_cls, g_s_0


def folded_token_attention(x: torch.Tensor, q_k: torch.Tensor, s_cls: Optional[torch.Tensor] = None,
                           x_cls: Optional[torch.Tensor] = None,
                           s_0: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """`FoldedTokenAttention.apply`: (attn (B, H, M), mixed (B, H, D))."""
    return FoldedTokenAttention.apply(x, q_k, s_cls, x_cls, s_0)
