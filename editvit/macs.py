"""Counting multiply-accumulates (MACs), the unit the paper's Table 1 and Table 3 call FLOPs."""
from typing import Sequence

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode


def count_macs(model: nn.Module, input_size: Sequence[int] = (3, 224, 224)) -> int:
    """MACs of one forward pass at batch 1, from torch.utils.flop_counter (which counts 2 FLOPs per MAC).

    The counter counts matmuls, convolutions and attention, not norms or activations. It does not see inside the
    fused attention kernel on CPU, so timm attention modules run their explicit path (the same matmuls) while
    counting; their `fused_attn` setting is restored afterwards.
    """
    param = next(model.parameters())
    x = torch.randn(1, *input_size, device=param.device, dtype=param.dtype)
    fused = {m: m.fused_attn for m in model.modules() if hasattr(m, 'fused_attn')}
    counter = FlopCounterMode(display=False)
    try:
        for m in fused:
            m.fused_attn = False
        with counter:  # not under no_grad: FlopCounterMode's module tracker needs autograd on
            model(x)
    finally:
        for m, value in fused.items():
            m.fused_attn = value
    return counter.get_total_flops() // 2
