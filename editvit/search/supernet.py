"""Training the weight-sharing supernet and scoring its members (single-path one-shot, uniform sampling).

Every step draws one member of the space (within the MACs budget) and trains the supernet's weights through it
with `PSViT.forward_subnet`: pooling has no weights, and a layer asked to share reuses the previous map through
the value third of its own qkv weights. After training, a member's validation accuracy with the inherited weights
is its score for the search.

`SupernetTask` is that training as a task of the run loop (`editvit.train.loop`): the run folder, checkpoints, exact
resume and clean stops of every training run, the engine's steps (the non-finite loss check, the loss summed over
images, the progress bar) and data side (`editvit.data`), with AdamW, a per-epoch cosine schedule and label
smoothing.

The member of each training step is drawn from (seed, step), the step being a buffer of `SampledSubnets`: it is saved
with the weights in every checkpoint, so a resumed run draws the members an uninterrupted one draws.
"""
import json
import random
from dataclasses import fields
from typing import Any, Dict, Iterable, List, Optional, Tuple

import torch
import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.scheduler import CosineLRScheduler
from timm.utils import accuracy

from ..data import AugmentOptions, create_dataset, create_loader, create_train_sampler, create_train_transform
from ..models.psvit import PSViT
from ..train.distributed import DistEnv
from ..train.loop import Task
from .config import SupernetConfig
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
        self.supernet, self.space, self.budget_macs, self.seed = supernet, space, budget_macs, seed
        self.register_buffer('steps', torch.zeros((), dtype=torch.long))  # forward passes so far: the member's index

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        rng = random.Random(self.seed * 1_000_003 + int(self.steps))
        self.steps += 1
        arch = sample_within_budget(self.space, rng, self.budget_macs)
        return self.supernet.forward_subnet(images, arch.num_tokens, arch.share_attention)  # (B, num_classes)


class EpochCosine(CosineLRScheduler):
    """timm's per-epoch cosine schedule (in epochs: t_initial, warmup_t) set at every update from the update count,
    so it resumes within an epoch: the learning rate of update u is that of epoch u // updates_per_epoch."""

    def __init__(self, optimizer: torch.optim.Optimizer, updates_per_epoch: int, **kwargs: Any) -> None:
        self.updates_per_epoch = updates_per_epoch
        super().__init__(optimizer, t_in_epochs=False, **kwargs)

    def _get_lr(self, t: int) -> List[float]:
        return super()._get_lr(t // self.updates_per_epoch)


def space_fields(space: PSViTSearchSpace) -> Dict[str, Any]:
    """The fields of a search space as plain lists and numbers (for config.yaml and search.json)."""
    return {f.name: json.loads(json.dumps(getattr(space, f.name))) for f in fields(space) if f.init}


def space_from_fields(values: Dict[str, Any]) -> PSViTSearchSpace:
    as_tuples = {k: tuple(tuple(v) if isinstance(v, list) else v for v in value) if isinstance(value, list) else value
                 for k, value in values.items()}
    return PSViTSearchSpace(**as_tuples)


def supernet_datasets(cfg: SupernetConfig, space: PSViTSearchSpace):
    """The training split and the held-out split that scores members (the synthetic set has its own)."""
    kwargs = dict(seed=cfg.seed, val_split_per_class=0 if cfg.dataset == 'synthetic' else cfg.val_split_per_class,
                  num_classes=space.num_classes, image_size=space.img_size, synthetic_samples=cfg.synthetic_samples)
    return (create_dataset(cfg.dataset, cfg.data_dir, 'train', **kwargs),
            create_dataset(cfg.dataset, cfg.data_dir, 'val', **kwargs))


class SupernetTask(Task):
    """The supernet trained through one sampled member per step (AdamW, per-epoch cosine after one warm-up epoch,
    label smoothing 0.1). No validation per epoch: members are scored by the search that follows."""

    cfg: SupernetConfig
    find_unused_parameters = True  # a member leaves some weights out
    command = 'editvit search'

    def __init__(self, cfg: SupernetConfig) -> None:
        super().__init__(cfg)
        self.space = space_from_fields(cfg.space)

    def create_model(self, env: DistEnv, resumed: bool) -> nn.Module:
        self.train_set, self.val_set = supernet_datasets(self.cfg, self.space)
        return SampledSubnets(self.space.build_supernet(), self.space, self.cfg.budget_macs, self.cfg.seed)

    def create_loader(self, model: nn.Module, env: DistEnv):
        cfg, size = self.cfg, (self.space.img_size, self.space.img_size)
        transform = create_train_transform(size, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD,
                                           AugmentOptions(crop='src', three_augment=False, color_jitter=None))
        sampler = create_train_sampler(self.train_set, cfg.seed, env.rank, env.world_size)
        return sampler, create_loader(self.train_set, transform, sampler, cfg.batch_size, cfg.num_workers,
                                      drop_last=True, seed=cfg.seed + env.rank)

    def create_optimizer(self, model: nn.Module, global_batch: int, updates_per_epoch: int):
        optimizer = torch.optim.AdamW(model.parameters(), lr=self.cfg.lr, weight_decay=0.05)
        epochs = self.cfg.epochs
        return optimizer, EpochCosine(optimizer, updates_per_epoch, t_initial=epochs,
                                      warmup_t=1 if epochs > 1 else 0, warmup_lr_init=self.cfg.lr / 10)

    def create_loss(self):
        return nn.CrossEntropyLoss(label_smoothing=0.1), None

    def describe(self) -> str:
        return (f'a PSViT supernet of {self.space.size} members on {self.cfg.dataset} ({len(self.train_set)} train / '
                f'{len(self.val_set)} held-out images)')

    def evaluate(self, model: nn.Module, ema: Any, env: DistEnv, epoch: int) -> Dict[str, Any]:
        return {}

    def final_metrics(self, model: nn.Module, env: DistEnv, history: List[Dict[str, Any]]) -> Dict[str, Any]:
        return {'space_size': self.space.size, 'budget_macs': self.cfg.budget_macs}


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

