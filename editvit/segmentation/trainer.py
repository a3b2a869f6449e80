"""`train_segmentation(config)`: a Segmenter run, a `SegmentationTask` of the training engine's run loop (the same
epochs, torchrun/DDP, autocast, atomic checkpoints with every RNG state, exact resume, progress bar, log and records;
the run folder is described in `editvit.train.loop`). Beyond it:

    DIR/metrics.json          with the per-class IoU of the last evaluation
    DIR/per_class_iou.md      the per-class IoU table of the last evaluation
"""
from pathlib import Path
from typing import Any, Dict, List, Optional

import timm
import torch
import torch.nn as nn
from timm.optim import create_optimizer_v2
from timm.scheduler import PolyLRScheduler

from ..data import ShardSampler, create_train_sampler
from ..errors import ConfigError
from ..train import distributed as D
from ..train.loop import Task, run_task
from ..train.records import write_text
from .config import SegTrainConfig
from .data import create_segmentation_dataset, create_segmentation_loader
from .evaluation import eval_transform, evaluate_segmentation
from .folder import MaskPairDataset
from .loss import SegmentationCrossEntropy
from .metrics import iou_table
from .segmenter import create_segmenter
from .transforms import SegmentationTrainTransform


def create_poly_scheduler(optimizer: torch.optim.Optimizer, cfg: SegTrainConfig, total_updates: int):
    """Segmenter's PolynomialLR stepped per update: lr_t = min_lr + (lr - min_lr) (1 - t / T)^power, timm's
    PolyLRScheduler being exactly that formula."""
    return PolyLRScheduler(optimizer, t_initial=total_updates, power=cfg.poly_power, lr_min=cfg.min_lr,
                           t_in_epochs=False)


class SegmentationTask(Task):
    """A Segmenter (EDIT or timm ViT backbone, Mask Transformer or linear decoder) trained with Segmenter's recipe:
    SGD with poly decay, mIoU by sliding windows every eval_every epochs and after the last."""

    cfg: SegTrainConfig
    find_unused_parameters = True  # EDIT's [CLS] decoder does not feed the patch tokens: no gradient here
    command = 'editvit segment train'

    def create_model(self, env: D.DistEnv, resumed: bool) -> nn.Module:
        cfg = self.cfg
        kwargs = dict(seed=cfg.seed, num_classes=cfg.num_classes or 3, image_size=cfg.synthetic_image_size,
                      synthetic_samples=cfg.synthetic_samples, objects_dataset=cfg.objects_dataset)
        self.train_set = create_segmentation_dataset(cfg.dataset, cfg.data_dir, 'train', **kwargs)
        self.val_set = create_segmentation_dataset(cfg.dataset, cfg.data_dir, 'val', **kwargs)
        if isinstance(self.train_set, MaskPairDataset):
            self.train_set.check_labelled()
        self.num_classes = len(self.train_set.classes)
        if cfg.num_classes is not None and cfg.num_classes != self.num_classes:
            raise ConfigError(f'num_classes is {cfg.num_classes} but dataset {cfg.dataset!r} has {self.num_classes} '
                              f'classes')
        self.last_eval: Dict[str, Any] = {}
        return create_segmenter(cfg.model, self.num_classes, cfg.crop_size, cfg.decoder, cfg.model_kwargs,
                                cfg.drop_path, cfg.decoder_depth, cfg.decoder_dropout,
                                backbone_weights=None if resumed else cfg.pretrained)

    def create_loader(self, model: nn.Module, env: D.DistEnv):
        cfg = self.cfg
        data_cfg = timm.data.resolve_model_data_config(model.encoder)
        train_tf = SegmentationTrainTransform(cfg.crop_size, data_cfg['mean'], data_cfg['std'],
                                              scale=(cfg.scale_long, cfg.scale_short),
                                              ratio_range=(cfg.ratio_min, cfg.ratio_max),
                                              cat_max_ratio=cfg.cat_max_ratio, hflip=cfg.hflip,
                                              photometric=cfg.photometric)
        sampler = create_train_sampler(self.train_set, cfg.seed, env.rank, env.world_size)
        pin = env.device.type == 'cuda'
        self.val_loader = create_segmentation_loader(
            self.val_set, eval_transform(model, cfg.scale_long, cfg.scale_short),
            ShardSampler(len(self.val_set), env.rank, env.world_size), cfg.eval_batch_size, cfg.num_workers,
            pin_memory=pin, seed=cfg.seed)
        return sampler, create_segmentation_loader(self.train_set, train_tf, sampler, cfg.batch_size,
                                                   cfg.num_workers, drop_last=True, pin_memory=pin,
                                                   seed=cfg.seed + env.rank)

    def create_optimizer(self, model: nn.Module, global_batch: int, updates_per_epoch: int):
        cfg = self.cfg
        try:
            optimizer = create_optimizer_v2(model, opt=cfg.optimizer, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                            momentum=cfg.momentum)
        except (AssertionError, ValueError) as e:
            raise ConfigError(f'optimizer {cfg.optimizer!r}: {e}') from e
        return optimizer, create_poly_scheduler(optimizer, cfg, cfg.epochs * updates_per_epoch)

    def create_loss(self):
        return SegmentationCrossEntropy(), None

    def describe(self) -> str:
        cfg = self.cfg
        return (f'Segmenter ({cfg.decoder}) on {cfg.model} on {cfg.dataset} ({len(self.train_set)} train / '
                f'{len(self.val_set)} val images, {self.num_classes} classes) with poly {cfg.poly_power} decay')

    def _evaluate(self, model: nn.Module, env: D.DistEnv) -> Dict[str, Any]:
        self.last_eval = evaluate_segmentation(model, self.val_loader, env, stride=self.cfg.eval_stride,
                                               amp=self.cfg.amp, class_names=self.train_set.classes)
        return self.last_eval

    def evaluate(self, model: nn.Module, ema: Optional[Any], env: D.DistEnv, epoch: int) -> Dict[str, Any]:
        if (epoch + 1) % self.cfg.eval_every and epoch + 1 != self.cfg.epochs:
            return {}
        val = self._evaluate(model, env)
        return {'val_mIoU': round(val['mIoU'], 4), 'val_pixel_acc': round(val['pixel_acc'], 4)}

    def final_metrics(self, model: nn.Module, env: D.DistEnv, history: List[Dict[str, Any]]) -> Dict[str, Any]:
        val = self.last_eval or self._evaluate(model, env)  # resumed after the last epoch: evaluate the final weights
        evaluated = [r['val_mIoU'] for r in history if 'val_mIoU' in r]
        return {'decoder': self.cfg.decoder, 'num_classes': self.num_classes, 'val_mIoU': val['mIoU'],
                'val_pixel_acc': val['pixel_acc'], 'val_mAcc': val['mAcc'],
                'best_val_mIoU': max(evaluated) if evaluated else val['mIoU'], 'per_class_iou': val['per_class_iou']}

    def save_outputs(self, out: Path, metrics: Dict[str, Any]) -> None:
        write_text(out / 'per_class_iou.md', iou_table(metrics['per_class_iou']))


def train_segmentation(cfg: SegTrainConfig) -> Dict[str, Any]:
    """Train a Segmenter as cfg says; returns the final metrics (also written to output/metrics.json).

    Raises:
        ConfigError, DataError, CheckpointError: bad input, before any training.
        NonFiniteLossError: the loss became NaN or infinite; the last checkpoint is kept.
    """
    return D.run_distributed(lambda cfg, env: run_task(SegmentationTask(cfg), env), cfg)
