"""Counting multiply-accumulates (MACs), the unit the paper's Table 1 and Table 3 call FLOPs."""
from typing import Sequence

import torch
import torch.nn as nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode


def count_macs(model: nn.Module, input_size: Sequence[int] = (3, 224, 224), meta: bool = True) -> int:
    """MACs of one forward pass at batch 1, from torch.utils.flop_counter (which counts 2 FLOPs per MAC).

    The counter counts matmuls, convolutions and attention, not norms or activations. It does not see inside the
    fused attention kernel on CPU, so timm attention modules run their explicit path (the same matmuls) while
    counting; their `fused_attn` setting is restored afterwards.

    Args:
        model: The model; its weights are not changed.
        input_size: One image's (C, H, W).
        meta: Count on the `meta` device: the model runs on shape-only stand-ins for its weights and input, no
            arithmetic is done (EDIT-B: ~0.5 s instead of several seconds on CPU). False runs on the model's device.
    """
    param = next(model.parameters())
    device = torch.device('meta') if meta else param.device
    x = torch.randn(1, *input_size, device=device, dtype=param.dtype)
    tensors = {}
    if meta:  # shape-only stand-ins for every parameter and buffer, passed in for this one call
        tensors = {name: torch.empty_like(t, device=device).requires_grad_(t.requires_grad)
                   for name, t in [*model.named_parameters(), *model.named_buffers()]}
    fused = {m: m.fused_attn for m in model.modules() if hasattr(m, 'fused_attn')}
    counter = FlopCounterMode(display=False)
    try:
        for m in fused:
            m.fused_attn = False
        with counter:  # not under no_grad: FlopCounterMode's module tracker needs autograd on
            functional_call(model, tensors, (x,))
    finally:
        for m, value in fused.items():
            m.fused_attn = value
    return counter.get_total_flops() // 2
