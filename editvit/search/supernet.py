"""Training the weight-sharing supernet and scoring its members (single-path one-shot, uniform sampling).

Every step draws one member of the space (within the MACs budget) and trains the supernet's weights through it
with `PSViT.forward_subnet`: pooling has no weights, and a layer asked to share reuses the previous map through
the value third of its own qkv weights. After training, a member's validation accuracy with the inherited weights
is its score for the search.

The steps are the training engine's (`editvit.train.engine.train_one_epoch`: the non-finite loss check, the loss
summed over images, the progress bar), with AdamW, a per-epoch cosine schedule and label smoothing; the data side is
the engine's too (`editvit.data`). The supernet is trained in memory, for the search that follows; it keeps no run
folder or checkpoints.
"""
import random
from typing import Iterable, Optional, Tuple

import torch
import torch.nn as nn
from timm.scheduler import CosineLRScheduler
from timm.utils import accuracy

from ..models.psvit import PSViT
from ..train.distributed import DistEnv
from ..train.engine import EpochState, train_one_epoch
from .space import Arch, PSViTSearchSpace


def sample_within_budget(space: PSViTSearchSpace, rng: random.Random, budget_macs: Optional[int],
                         tries: int = 100) -> Arch:
    """A uniformly drawn member that fits the budget (the cheapest member if none is drawn in `tries`)."""
    for _ in range(tries):
        arch = space.sample(rng)
        if budget_macs is None or space.macs(arch) <= budget_macs:
            return arch
    return space.cheapest()


class SampledSubnets(nn.Module):
    """The supernet seen through one member per forward pass, drawn uniformly within the budget."""

    def __init__(self, supernet: PSViT, space: PSViTSearchSpace, budget_macs: Optional[int], seed: int) -> None:
        super().__init__()
        self.supernet, self.space, self.budget_macs = supernet, space, budget_macs
        self.rng = random.Random(seed)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        arch = sample_within_budget(self.space, self.rng, self.budget_macs)
        return self.supernet.forward_subnet(images, arch.num_tokens, arch.share_attention)  # (B, num_classes)


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
        progress: bool = True,
) -> float:
    """Train the supernet with one uniformly sampled member per step; returns the mean loss of the last epoch.

    Args:
        supernet: `space.build_supernet()`.
        space: The search space.
        loader: Yields (images, labels, dropped) batches (`editvit.data.create_loader`); has a length.
        epochs: Passes over the loader.
        lr: Peak AdamW learning rate (cosine schedule after one warm-up epoch when epochs > 1, else constant).
        weight_decay: AdamW weight decay.
        smoothing: Label smoothing.
        budget_macs: Sample only members within this budget (None: all).
        seed: Seed of the member sampling.
        max_steps: Stop after this many steps in total (None: run every epoch).
        progress: Show a progress bar and a line per epoch.
    """
    model = SampledSubnets(supernet, space, budget_macs, seed)
    optimizer = torch.optim.AdamW(supernet.parameters(), lr=lr, weight_decay=weight_decay)
    # per-epoch cosine decay after one warm-up epoch; stepped per epoch, so `step_update` leaves it alone
    scheduler = CosineLRScheduler(optimizer, t_initial=epochs, warmup_t=1 if epochs > 1 else 0,
                                  warmup_lr_init=lr / 10)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=smoothing)
    state, env, stats = EpochState(), DistEnv(), {'train_loss': float('nan')}
    steps = len(loader) if max_steps is None else min(len(loader), max_steps)
    while state.epoch < epochs and steps > 0:
        stats = train_one_epoch(model, loader, loss_fn, optimizer, scheduler, state, env, updates_per_epoch=steps,
                                accum_steps=1, progress=progress)
        if progress:
            print(f'supernet epoch {state.epoch}: loss {stats["train_loss"]:.4f}, {stats["images_per_sec"]:.0f} '
                  f'images/s, {state.updates} steps', flush=True)
        if max_steps is not None:
            steps = min(steps, max_steps - state.updates)
        scheduler.step(state.epoch + 1)
        state = EpochState(state.epoch + 1, 0, state.updates)
    return stats['train_loss']


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

