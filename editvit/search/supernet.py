"""Training the weight-sharing supernet and scoring its members (single-path one-shot, uniform sampling).

Every step draws one member of the space (within the MACs budget) and trains the supernet's weights through it
with `PSViT.forward_subnet`: pooling has no weights, and a layer asked to share reuses the previous map through
the value third of its own qkv weights. After training, a member's validation accuracy with the inherited weights
is its score for the search.

This is a short loop of its own (AdamW, cosine schedule, label smoothing, timm pieces) rather than the training
engine's `train()`, which trains one fixed model per run; the data side does use the engine's data sets,
transforms and loaders (`editvit.data`).
"""
import random
from typing import Iterable, Optional, Tuple

import torch
import torch.nn.functional as F
from timm.scheduler import CosineLRScheduler
from timm.utils import accuracy

from ..models.psvit import PSViT
from .space import Arch, PSViTSearchSpace


def sample_within_budget(space: PSViTSearchSpace, rng: random.Random, budget_macs: Optional[int],
                         tries: int = 100) -> Arch:
    """A uniformly drawn member that fits the budget (the cheapest member if none is drawn in `tries`)."""
    for _ in range(tries):
        arch = space.sample(rng)
        if budget_macs is None or space.macs(arch) <= budget_macs:
            return arch
    return space.cheapest()


def train_supernet(
        supernet: PSViT,
        space: PSViTSearchSpace,
        loader: Iterable[Tuple[torch.Tensor, torch.Tensor, int]],
        epochs: int = 1,
        lr: float = 1e-3,
        weight_decay: float = 0.05,
        smoothing: float = 0.1,
        budget_macs: Optional[int] = None,
        seed: int = 0,
        max_steps: Optional[int] = None,
        log_every: int = 50,
) -> float:
    """Train the supernet with one uniformly sampled member per step; returns the mean loss of the last epoch.

    Args:
        supernet: `space.build_supernet()`.
        space: The search space.
        loader: Yields (images, labels, dropped) batches (`editvit.data.create_loader`).
        epochs: Passes over the loader.
        lr: Peak AdamW learning rate (cosine schedule after one warm-up epoch when epochs > 1, else constant).
        weight_decay: AdamW weight decay.
        smoothing: Label smoothing.
        budget_macs: Sample only members within this budget (None: all).
        seed: Seed of the member sampling.
        max_steps: Stop after this many steps in total (None: run every epoch).
        log_every: Print the loss every this many steps (0: quiet).
    """
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(supernet.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = None
    if epochs > 1:  # per-epoch cosine decay after one warm-up epoch
        scheduler = CosineLRScheduler(optimizer, t_initial=epochs, warmup_t=1, warmup_lr_init=lr / 10)
    supernet.train()
    step, mean = 0, float('nan')
    for epoch in range(epochs):
        total, count = 0., 0
        for images, labels, _ in loader:
            if images.numel() == 0:
                continue
            arch = sample_within_budget(space, rng, budget_macs)
            logits = supernet.forward_subnet(images, arch.num_tokens, arch.share_attention)
            loss = F.cross_entropy(logits, labels, label_smoothing=smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, count, step = total + loss.item(), count + 1, step + 1
            if log_every and step % log_every == 0:
                print(f'supernet epoch {epoch} step {step}: loss {loss.item():.4f}', flush=True)
            if max_steps is not None and step >= max_steps:
                return total / count
        if scheduler is not None:
            scheduler.step(epoch + 1)
        mean = total / max(count, 1)
    return mean


@torch.no_grad()
def evaluate_member(supernet: PSViT, arch: Arch, loader: Iterable[Tuple[torch.Tensor, torch.Tensor, int]],
                    max_batches: Optional[int] = None) -> float:
    """Top-1 accuracy (%) of one member with the supernet's weights."""
    supernet.eval()
    correct, seen = 0., 0
    for i, (images, labels, _) in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        if images.numel() == 0:
            continue
        logits = supernet.forward_subnet(images, arch.num_tokens, arch.share_attention)
        correct += accuracy(logits, labels, topk=(1,))[0].item() * labels.shape[0] / 100
        seen += labels.shape[0]
    if seen == 0:
        raise ValueError('the validation loader gave no images to score the member on')
    return 100. * correct / seen

