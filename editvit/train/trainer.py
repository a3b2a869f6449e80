"""`train(config)`: image classification with the paper's DeiT3 recipe, a `ClassificationTask` of the run loop (the
run folder it writes is described in `editvit.train.loop`; summary.csv has val_loss, val_top1 and val_top5 columns,
and ema_val_top1 with an EMA)."""
from typing import Any, Dict, List, Optional

import timm
import torch.nn as nn
from timm.utils import ModelEmaV3

from ..data import AugmentOptions, ShardSampler, create_dataset, create_eval_transform, create_loader
from ..data import create_train_batches, create_train_sampler, create_train_transform
from ..errors import ConfigError, DataError
from ..models.factory import create_model
from . import distributed as D
from .config import TrainConfig
from .engine import evaluate
from .loop import Task, run_task
from .model_setup import input_size, load_finetune_weights
from .recipe import create_loss, create_mixup, create_optimizer, create_scheduler, scaled_lr

SYNTHETIC_IMAGE_SIZE = 32


def classification_datasets(cfg: Any, split: str):
    """The data set split of a classification (or evaluation) config, and its number of classes."""
    data = create_dataset(cfg.dataset, cfg.data_dir, split, seed=cfg.seed, val_split_per_class=cfg.val_split_per_class,
                          skip_bad_images=cfg.skip_bad_images, num_classes=cfg.num_classes or 10,
                          image_size=SYNTHETIC_IMAGE_SIZE, synthetic_samples=cfg.synthetic_samples)
    if len(data) == 0:
        raise DataError(f'the {split} split of dataset {cfg.dataset!r}'
                        f'{f" in {cfg.data_dir!r}" if cfg.data_dir else ""} holds no images')
    num_classes = len(data.classes)
    if cfg.num_classes is not None and cfg.num_classes != num_classes:
        raise ConfigError(f'num_classes is {cfg.num_classes} but dataset {cfg.dataset!r} has {num_classes} classes')
    return data, num_classes


class ClassificationTask(Task):
    """A timm classifier trained on an image data set: top-1, top-5 and loss on its validation split every epoch."""

    cfg: TrainConfig

    def create_model(self, env: D.DistEnv, resumed: bool) -> nn.Module:
        cfg = self.cfg
        self.train_set, self.num_classes = classification_datasets(cfg, 'train')
        self.val_set, _ = classification_datasets(cfg, 'val')
        model = create_model(cfg.model, self.num_classes, cfg.model_kwargs, drop_path=cfg.drop_path,
                             layer_scale_init=cfg.layer_scale_init)
        if cfg.finetune and not resumed:
            load_finetune_weights(model, cfg.finetune)
        if cfg.grad_checkpointing:
            model.set_grad_checkpointing(True)
        return model

    def create_loader(self, model: nn.Module, env: D.DistEnv):
        cfg = self.cfg
        data_cfg = timm.data.resolve_model_data_config(model)
        size = input_size(model)
        augment = AugmentOptions.from_config(cfg, data_cfg['interpolation'])
        train_tf = create_train_transform(size, data_cfg['mean'], data_cfg['std'], augment)
        eval_tf = create_eval_transform(size, data_cfg['mean'], data_cfg['std'], crop_ratio=cfg.eval_crop_ratio,
                                        interpolation=data_cfg['interpolation'])
        sampler = create_train_sampler(self.train_set, cfg.seed, env.rank, env.world_size, cfg.repeated_aug)
        pin = env.device.type == 'cuda'
        self.val_loader = create_loader(self.val_set, eval_tf, ShardSampler(len(self.val_set), env.rank,
                                                                            env.world_size),
                                        cfg.batch_size, cfg.num_workers, pin_memory=pin, seed=cfg.seed)
        # small images (CIFAR, Fashion-MNIST, small image folders): decoded once, augmented a batch at a time
        loader = create_train_batches(self.train_set, sampler, cfg.batch_size, size, data_cfg['mean'], data_cfg['std'],
                                      augment, device=env.device, data_path=cfg.data_path)
        if loader is None:  # large images: per-image PIL transforms in DataLoader workers
            loader = create_loader(self.train_set, train_tf, sampler, cfg.batch_size, cfg.num_workers,
                                   drop_last=True, pin_memory=pin, seed=cfg.seed + env.rank)
        return sampler, loader

    def create_optimizer(self, model: nn.Module, global_batch: int, updates_per_epoch: int):
        optimizer = create_optimizer(model, self.cfg, scaled_lr(self.cfg, global_batch))
        return optimizer, create_scheduler(optimizer, self.cfg, updates_per_epoch)

    def create_loss(self):
        mixup = create_mixup(self.cfg, self.num_classes)
        return create_loss(self.cfg, mixup is not None), mixup

    def create_ema(self, model: nn.Module) -> Optional[ModelEmaV3]:
        return ModelEmaV3(model, decay=self.cfg.ema_decay) if self.cfg.ema else None

    def describe(self) -> str:
        return (f'{self.cfg.model} on {self.cfg.dataset} ({len(self.train_set)} train / {len(self.val_set)} val '
                f'images, {self.num_classes} classes)')

    def evaluate(self, model: nn.Module, ema: Optional[ModelEmaV3], env: D.DistEnv, epoch: int) -> Dict[str, Any]:
        val = evaluate(model, self.val_loader, env, self.cfg.amp)
        row = {'val_loss': round(val['loss'], 6), 'val_top1': round(val['top1'], 4),
               'val_top5': round(val['top5'], 4), 'bad_images': val['bad_images']}
        if ema is not None:
            row['ema_val_top1'] = round(evaluate(ema.module, self.val_loader, env, self.cfg.amp)['top1'], 4)
        return row

    def final_metrics(self, model: nn.Module, env: D.DistEnv, history: List[Dict[str, Any]]) -> Dict[str, Any]:
        last = history[-1]
        metrics = {'num_classes': self.num_classes, 'val_loss': last['val_loss'], 'val_top1': last['val_top1'],
                   'val_top5': last['val_top5'], 'best_val_top1': max(r['val_top1'] for r in history)}
        if 'ema_val_top1' in last:
            metrics['ema_val_top1'] = last['ema_val_top1']
        return metrics


def train(cfg: TrainConfig) -> Dict[str, Any]:
    """Train a classifier as cfg says; returns the final metrics (also written to output/metrics.json).

    Raises:
        ConfigError, DataError, CheckpointError: bad input, before any training.
        NonFiniteLossError: the loss became NaN or infinite; the last checkpoint is kept.
    """
    return D.run_distributed(lambda cfg, env: run_task(ClassificationTask(cfg), env), cfg)
