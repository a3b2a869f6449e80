"""The DeiT3 training recipe of the paper (Sec. 4.3, Table 2) from a TrainConfig: batch arithmetic, learning rate
scaling, LAMB, cosine schedule with warm-up, Mixup/CutMix and the loss, all taken from timm."""
import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
from timm.data import Mixup
from timm.loss import BinaryCrossEntropy, LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler

from ..errors import ConfigError
from .config import TrainConfig


@dataclass(frozen=True)
class BatchPlan:
    """How one optimiser update is assembled: batch_size images per process and micro-step, accum_steps micro-steps,
    world_size processes."""
    batch_size: int
    world_size: int
    accum_steps: int

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size * self.accum_steps


def plan_batches(cfg: TrainConfig, world_size: int) -> BatchPlan:
    """Gradient accumulation that reaches cfg.global_batch_size (the paper's 2048 on small hardware, as the paper
    itself did for the Base models)."""
    per_step = cfg.batch_size * world_size
    target = cfg.global_batch_size or per_step
    if target % per_step:
        raise ConfigError(f'global_batch_size {target} is not a multiple of batch_size x processes = '
                          f'{cfg.batch_size} x {world_size} = {per_step}')
    return BatchPlan(cfg.batch_size, world_size, target // per_step)


def scaled_lr(cfg: TrainConfig, global_batch: int) -> float:
    """The learning rate for the actual global batch: cfg.lr is given for lr_base_batch images per update and
    scales linearly (DeiT: lr x batch / base) or with the square root; no lr_base_batch means no scaling."""
    if not cfg.lr_base_batch:
        return cfg.lr
    ratio = global_batch / cfg.lr_base_batch
    return cfg.lr * (ratio if cfg.lr_scale == 'linear' else math.sqrt(ratio))


def create_optimizer(model: nn.Module, cfg: TrainConfig, lr: float) -> torch.optim.Optimizer:
    """timm's optimizer (LAMB in the paper), no weight decay on biases, norms and the model's no_weight_decay()."""
    try:
        return create_optimizer_v2(model, opt=cfg.optimizer, lr=lr, weight_decay=cfg.weight_decay)
    except (AssertionError, ValueError) as e:
        raise ConfigError(f'optimizer {cfg.optimizer!r}: {e}') from e


def create_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, updates_per_epoch: int) -> CosineLRScheduler:
    """Cosine decay to min_lr over the run, after a linear warm-up from warmup_lr, stepped once per update."""
    total = cfg.epochs * updates_per_epoch
    return CosineLRScheduler(
        optimizer, t_initial=total, lr_min=cfg.min_lr, warmup_t=round(cfg.warmup_epochs * updates_per_epoch),
        warmup_lr_init=cfg.warmup_lr, t_in_epochs=False)


def create_mixup(cfg: TrainConfig, num_classes: int) -> Optional[Mixup]:
    """timm's Mixup/CutMix (one of the two per batch when both are on), with the label smoothing folded into the
    mixed targets; None when both alphas are 0."""
    if cfg.mixup <= 0 and cfg.cutmix <= 0:
        return None
    return Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, label_smoothing=cfg.smoothing,
                 num_classes=num_classes)


def create_loss(cfg: TrainConfig, mixup_active: bool) -> nn.Module:
    """The training loss, chosen as timm's train.py does: BCE (1k pre-training) or CE, on soft targets with Mixup."""
    if cfg.loss == 'bce':
        return BinaryCrossEntropy(smoothing=0.0 if mixup_active else cfg.smoothing)
    if mixup_active:
        return SoftTargetCrossEntropy()
    if cfg.smoothing > 0:
        return LabelSmoothingCrossEntropy(smoothing=cfg.smoothing)
    return nn.CrossEntropyLoss()
