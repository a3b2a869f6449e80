"""EDIT's decoder layer: the [CLS] query cross-attends over [CLS; patch tokens] (paper Sec. 3.2, Fig. 3).

One `ClassDecoder` is shared by every depth of the model. At depth i the [CLS] from depth i-1 is the query and
the key/value set is [CLS_(i-1); encoder tokens after block i]:

    m   = [c_(i-1); p_i]                          # (B, 1+N, D) the set the [CLS] attends over
    q   = LN(c_(i-1))                             # no query projection (default)
    a   = softmax(q . (W_k LN(m) + b_k) / sqrt(D))
    c_i = c_(i-1) + sum_j a_j (W_v LN(m_j) + b_v)  # no output projection (default)

This matches the paper's Table 1 parameter and FLOP counts: the only weights are one LayerNorm and the two D x D
projections W_k, W_v, and the paper's FLOPs are those of projecting all 1+N tokens to keys and values at every depth.

The folded form. Because there is a single query per head, the projections can be moved onto the query side:

    q . (W_k x_j + b_k) = (W_k^T q) . x_j + q . b_k   (the last term is the same for all j and cancels in softmax)
    sum_j a_j (W_v x_j + b_v) = W_v (sum_j a_j x_j) + b_v   (because sum_j a_j = 1)

so a layer costs O(N D + D^2) instead of O(N D^2) and computes the same function. `folded=False` keeps the literal
form, which projects every token to a key and a value as the paper counts it.
"""
from typing import Literal, Optional, Tuple

import torch
import torch.nn as nn

from .folded_attention import folded_token_attention

torch.fx.wrap('folded_token_attention')  # FX tracing keeps the custom autograd Function as one call

DecoderNorm = Literal['pre', 'post']


class ClassDecoder(nn.Module):
    """Cross-attention of the [CLS] query over [CLS; tokens], with a residual connection and a LayerNorm.

    Args:
        dim: Token width D.
        num_heads: Attention heads; the paper uses a single head.
        qkv_bias: Bias on the key/value (and query) projections.
        query_proj: Project the normalised [CLS] to a query with a D x D linear layer (the paper has none).
        out_proj: Project the attention output with a D x D linear layer (the paper has none).
        attend_to_cls: Put the previous [CLS] in the key/value set, as the paper does; if False only the
            encoder tokens are attended to.
        norm: 'pre' normalises the query and the key/value set before attending (c + CA(LN(c), LN(m)));
            'post' normalises after the residual (LN(c + CA(c, m))), the literal original-Transformer reading.
        folded: Compute the attention with the projections folded onto the query (same function, O(N D) cost).
        attn_drop: Dropout on the attention weights.
        proj_drop: Dropout on the attention output.
        norm_layer: Normalisation layer.
    """

    def __init__(
            self,
            dim: int,
            num_heads: int = 1,
            qkv_bias: bool = True,
            query_proj: bool = False,
            out_proj: bool = False,
            attend_to_cls: bool = True,
            norm: DecoderNorm = 'pre',
            folded: bool = True,
            attn_drop: float = 0.,
            proj_drop: float = 0.,
            norm_layer: type = nn.LayerNorm,
    ) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f'decoder width {dim} is not divisible by decoder_heads={num_heads}; '
                             f'choose a head count that divides {dim}')
        if norm not in ('pre', 'post'):
            raise ValueError(f"decoder_norm must be 'pre' or 'post', got {norm!r}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.attend_to_cls = attend_to_cls
        self.norm_position = norm
        self.folded = folded

        self.norm = norm_layer(dim)
        self.q = nn.Linear(dim, dim, bias=qkv_bias) if query_proj else None
        self.k = nn.Linear(dim, dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim) if out_proj else None
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, cls: torch.Tensor, tokens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Refine the [CLS] from the encoder tokens of one depth.

        Args:
            cls: The previous [CLS], (B, D).
            tokens: The encoder tokens after the aligned block, (B, N, D).

        Returns:
            The new [CLS] (B, D) and the attention (B, H, M), M = 1+N with slot 0 the previous [CLS]
            (M = N when attend_to_cls is False).
        """
        B, D = cls.shape
        H, Dh = self.num_heads, self.head_dim
        if self.norm_position == 'pre':
            q_in = self.norm(cls)  # (B, D)
            tokens = self.norm(tokens)  # (B, N, D)
        else:
            q_in = cls
        # the key/value set m = [c; p]; kept as two pieces so the (B, N, D) tokens are never copied
        kv_cls = q_in if self.attend_to_cls else None

        q = self.q(q_in) if self.q is not None else q_in  # (B, D)
        q = q.view(B, H, Dh) * self.scale  # (B, H, Dh)
        if self.folded:
            attn, pooled = self._attend_folded(q, kv_cls, tokens)
        else:
            attn, pooled = self._attend_literal(q, kv_cls, tokens)
        out = pooled.reshape(B, D)  # (B, D)
        if self.proj is not None:
            out = self.proj(out)
        out = self.proj_drop(out)
        if self.norm_position == 'pre':
            return cls + out, attn
        return self.norm(cls + out), attn

    def _attend_folded(
            self, q: torch.Tensor, kv_cls: Optional[torch.Tensor], tokens: torch.Tensor,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Keys and values never materialised: W_k moves onto the query, W_v after the weighted sum."""
        H, Dh = self.num_heads, self.head_dim
        w_k = self.k.weight.view(H, Dh, -1)  # (H, Dh, D)
        w_v = self.v.weight.view(H, Dh, -1)  # (H, Dh, D)
        q_k = torch.einsum('bhc,hcd->bhd', q, w_k)  # (B, H, D) the query seen in token space, W_k^T q
        scores_cls = (q_k * kv_cls.unsqueeze(1)).sum(-1, keepdim=True) if kv_cls is not None else None  # (B, H, 1)
        # q . b_k is the same for every key and cancels in the softmax; it is added anyway (O(B D)) so that b_k
        # receives its (zero) gradient as in the literal form, which DistributedDataParallel requires
        b_k, b_v = self.k.bias, self.v.bias
        q_b = (q * b_k.view(H, Dh)).sum(-1, keepdim=True) if b_k is not None else None  # (B, H, 1)
        dropout = self.training and self.attn_drop.p > 0
        if not dropout and not torch.jit.is_scripting():
            attn, mixed = self._folded_function(tokens, q_k, scores_cls, kv_cls, q_b)  # (B, H, M), (B, H, D)
            attn_used = attn
        else:  # attention dropout (the mix uses the dropped weights), or TorchScript: plain autograd
            scores_tok = q_k @ tokens.transpose(1, 2)  # (B, H, N)
            scores = scores_tok if scores_cls is None else torch.cat([scores_cls, scores_tok], dim=-1)  # (B, H, M)
            attn = (scores if q_b is None else scores + q_b).softmax(dim=-1)  # (B, H, M)
            attn_used = self.attn_drop(attn)
            if kv_cls is not None:
                mixed = attn_used[..., 1:] @ tokens + attn_used[..., :1] * kv_cls.unsqueeze(1)  # (B, H, D)
            else:
                mixed = attn_used @ tokens  # (B, H, D) sum_j a_j x_j
        pooled = torch.einsum('bhd,hcd->bhc', mixed, w_v)  # (B, H, Dh) W_v (sum_j a_j x_j)
        if b_v is not None:
            # sum_j a_j b_v = b_v; with attention dropout the weights no longer sum to one, so scale by their sum
            if dropout:
                pooled = pooled + attn_used.sum(-1, keepdim=True) * b_v.view(H, Dh)  # (B, H, Dh)
            else:
                pooled = pooled + b_v.view(H, Dh)  # (B, H, Dh)
        return attn, pooled

    @torch.jit.unused
    def _folded_function(
            self, tokens: torch.Tensor, q_k: torch.Tensor, scores_cls: Optional[torch.Tensor],
            kv_cls: Optional[torch.Tensor], q_b: Optional[torch.Tensor],
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """`FoldedTokenAttention` (a custom autograd Function, which TorchScript cannot compile)."""
        return folded_token_attention(tokens, q_k, scores_cls, kv_cls, q_b)

    def _attend_literal(
            self, q: torch.Tensor, kv_cls: Optional[torch.Tensor], tokens: torch.Tensor,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The paper's form: every token of the set projected to a key and a value."""
        B, N, D = tokens.shape
        H, Dh = self.num_heads, self.head_dim
        kv_in = tokens if kv_cls is None else torch.cat([kv_cls.unsqueeze(1), tokens], dim=1)  # (B, M, D)
        M = kv_in.shape[1]
        k = self.k(kv_in).view(B, M, H, Dh).transpose(1, 2)  # (B, H, M, Dh)
        v = self.v(kv_in).view(B, M, H, Dh).transpose(1, 2)  # (B, H, M, Dh)
        scores = (k @ q.unsqueeze(-1)).squeeze(-1)  # (B, H, M)
        attn = scores.softmax(dim=-1)  # (B, H, M)
        pooled = (self.attn_drop(attn).unsqueeze(-2) @ v).squeeze(-2)  # (B, H, Dh)
        return attn, pooled

