"""`train_segmentation(config)`: a Segmenter run through the classification engine's pieces (the same epoch loop,
torchrun/DDP, autocast, atomic checkpoints with every RNG state, exact resume, progress bar, log and records).

    DIR/config.yaml, checkpoint-last.pth, summary.csv, log.txt   as for classification
    DIR/model.safetensors     the final Segmenter weights
    DIR/metrics.json          the final metrics, with the per-class IoU of the last evaluation
    DIR/per_class_iou.md      the per-class IoU table of the last evaluation
"""
import time
from pathlib import Path
from typing import Any, Dict, List

import timm
import torch
import torch.nn as nn
import yaml
from timm.optim import create_optimizer_v2
from timm.scheduler import PolyLRScheduler
from timm.utils import NativeScaler
from torch.nn.parallel import DistributedDataParallel

from ..data import ShardSampler, create_train_sampler
from ..train import distributed as D
from ..train.checkpoint import LAST, restore_run, save_run_checkpoint
from ..errors import ConfigError
from ..train.config import from_dict, to_dict
from ..train.engine import EpochState, train_one_epoch
from ..train.recipe import plan_batches
from ..train.records import RunLog, write_json, write_summary, write_text
from ..train.rng import seed_everything
from ..train.trainer import check_resume, read_run_config
from ..weights import save_model
from .config import SegTrainConfig
from .data import create_segmentation_dataset, create_segmentation_loader
from .evaluation import eval_transform, evaluate_segmentation
from .loss import SegmentationCrossEntropy
from .metrics import iou_table
from .segmenter import create_segmenter
from .transforms import SegmentationTrainTransform


def create_poly_scheduler(optimizer: torch.optim.Optimizer, cfg: SegTrainConfig, total_updates: int):
    """Segmenter's PolynomialLR stepped per update: lr_t = min_lr + (lr - min_lr) (1 - t / T)^power, timm's
    PolyLRScheduler being exactly that formula."""
    return PolyLRScheduler(optimizer, t_initial=total_updates, power=cfg.poly_power, lr_min=cfg.min_lr,
                           t_in_epochs=False)


def train_segmentation(cfg: SegTrainConfig) -> Dict[str, Any]:
    """Train a Segmenter as cfg says; returns the final metrics (also written to output/metrics.json).

    Raises:
        ConfigError, DataError, CheckpointError: bad input, before any training.
        NonFiniteLossError: the loss became NaN or infinite; the last checkpoint is kept.
    """
    return D.run_distributed(_train, cfg)


def _train(cfg: SegTrainConfig, env: D.DistEnv) -> Dict[str, Any]:
    out = Path(cfg.output)
    resumed = check_resume(cfg, out)
    plan = plan_batches(cfg, env.world_size)
    if resumed is not None and len(resumed['ranks']) != env.world_size:
        raise ConfigError(f'the run in {str(out)!r} was trained on {len(resumed["ranks"])} processes, now '
                          f'{env.world_size}: resume it with the same number')

    seed_everything(cfg.seed)  # identical initial weights on every rank
    data_kwargs = dict(seed=cfg.seed, num_classes=cfg.num_classes or 3, image_size=cfg.synthetic_image_size,
                       synthetic_samples=cfg.synthetic_samples, objects_dataset=cfg.objects_dataset)
    train_set = create_segmentation_dataset(cfg.dataset, cfg.data_dir, 'train', **data_kwargs)
    val_set = create_segmentation_dataset(cfg.dataset, cfg.data_dir, 'val', **data_kwargs)
    num_classes = len(train_set.classes)
    if cfg.num_classes is not None and cfg.num_classes != num_classes:
        raise ConfigError(f'num_classes is {cfg.num_classes} but dataset {cfg.dataset!r} has {num_classes} classes')
    model = create_segmenter(cfg.model, num_classes, cfg.crop_size, cfg.decoder, cfg.model_kwargs, cfg.drop_path,
                             cfg.decoder_depth, cfg.decoder_dropout,
                             backbone_weights=cfg.pretrained if resumed is None else None)
    model.to(env.device)
    seed_everything(cfg.seed + env.rank)

    data_cfg = timm.data.resolve_model_data_config(model.encoder)
    train_tf = SegmentationTrainTransform(cfg.crop_size, data_cfg['mean'], data_cfg['std'],
                                          scale=(cfg.scale_long, cfg.scale_short),
                                          ratio_range=(cfg.ratio_min, cfg.ratio_max),
                                          cat_max_ratio=cfg.cat_max_ratio, hflip=cfg.hflip,
                                          photometric=cfg.photometric)
    sampler = create_train_sampler(train_set, cfg.seed, env.rank, env.world_size)
    pin = env.device.type == 'cuda'
    train_loader = create_segmentation_loader(train_set, train_tf, sampler, cfg.batch_size, cfg.num_workers,
                                              drop_last=True, pin_memory=pin, seed=cfg.seed + env.rank)
    val_loader = create_segmentation_loader(val_set, eval_transform(model, cfg.scale_long, cfg.scale_short),
                                            ShardSampler(len(val_set), env.rank, env.world_size),
                                            cfg.eval_batch_size, cfg.num_workers, pin_memory=pin, seed=cfg.seed)
    updates_per_epoch = len(sampler) // cfg.batch_size // plan.accum_steps
    if updates_per_epoch == 0:
        raise ConfigError(f'the training set has {len(train_set)} images: too few for one update of '
                          f'{plan.global_batch} images')

    try:
        optimizer = create_optimizer_v2(model, opt=cfg.optimizer, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                        momentum=cfg.momentum)
    except (AssertionError, ValueError) as e:
        raise ConfigError(f'optimizer {cfg.optimizer!r}: {e}') from e
    scheduler = create_poly_scheduler(optimizer, cfg, cfg.epochs * updates_per_epoch)
    loss_fn = SegmentationCrossEntropy()
    scaler = NativeScaler(device=env.device.type) if cfg.amp == 'fp16' else None
    train_model: nn.Module = model
    if env.distributed:
        # EDIT's [CLS] decoder does not feed the patch tokens, so its weights get no gradient here
        train_model = DistributedDataParallel(model, device_ids=[env.local_rank] if pin else None,
                                              find_unused_parameters=True)
    if cfg.compile:
        train_model = torch.compile(train_model)

    state = EpochState()
    history: List[Dict[str, Any]] = []
    if resumed is not None:
        state, history = restore_run(resumed, env.rank, model, optimizer, scheduler, scaler)

    log = RunLog(out, env.is_main, cfg.tensorboard)
    if env.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / 'config.yaml', yaml.safe_dump(to_dict(cfg), sort_keys=False))
    num_params = sum(p.numel() for p in model.parameters())
    log.line(f'{"resuming" if resumed else "training"} Segmenter ({cfg.decoder}) on {cfg.model} '
             f'({num_params / 1e6:.2f}M parameters) on {cfg.dataset} ({len(train_set)} train / {len(val_set)} val '
             f'images, {num_classes} classes) | {env.world_size} process(es) on {env.device.type} | global batch '
             f'{plan.global_batch} | lr {cfg.lr:.3g} poly {cfg.poly_power} | {updates_per_epoch} updates/epoch'
             + (f' | from epoch {state.epoch} batch {state.batches_done}' if resumed else ''))

    def checkpoint() -> None:
        save_run_checkpoint(out / LAST, env, state, model, optimizer, scheduler, scaler, history, to_dict(cfg))

    def on_update() -> None:
        if cfg.checkpoint_every and state.updates % cfg.checkpoint_every == 0 \
                and state.batches_done < updates_per_epoch * plan.accum_steps:
            checkpoint()

    val: Dict[str, Any] = {}
    try:
        while state.epoch < cfg.epochs:
            start = time.perf_counter()
            sampler.set_epoch(state.epoch, start=state.batches_done * cfg.batch_size)
            stats = train_one_epoch(
                train_model, train_loader, loss_fn, optimizer, scheduler, state, env,
                updates_per_epoch=updates_per_epoch, accum_steps=plan.accum_steps, amp=cfg.amp,
                clip_grad=cfg.clip_grad, scaler=scaler, on_update=on_update, progress=cfg.progress)
            # the engine counts label elements as samples: pixels here, so its loss is the mean over all crop
            # pixels' batches and its rate is pixels per second; all crops are crop_size^2 pixels
            row: Dict[str, Any] = {'epoch': state.epoch, 'train_loss': round(stats['train_loss'], 6),
                                   'lr': float(f"{optimizer.param_groups[0]['lr']:.6g}")}
            if (state.epoch + 1) % cfg.eval_every == 0 or state.epoch + 1 == cfg.epochs:
                val = evaluate_segmentation(model, val_loader, env, stride=cfg.eval_stride, amp=cfg.amp,
                                            class_names=train_set.classes)
                row.update(val_mIoU=round(val['mIoU'], 4), val_pixel_acc=round(val['pixel_acc'], 4))
            row.update(images_per_sec=round(stats['images_per_sec'] / cfg.crop_size ** 2, 2),
                       epoch_seconds=round(time.perf_counter() - start, 2))
            history.append(row)
            log.line(' | '.join(f'{k} {v}' for k, v in row.items()))
            log.scalars({k: v for k, v in row.items() if k != 'epoch'}, state.epoch)
            state = EpochState(state.epoch + 1, 0, state.updates)
            checkpoint()
            if env.is_main:
                write_summary(out / 'summary.csv', history)
    finally:
        log.close()

    if not val:  # resumed after the last epoch's checkpoint: evaluate the final weights
        val = evaluate_segmentation(model, val_loader, env, stride=cfg.eval_stride, amp=cfg.amp,
                                    class_names=train_set.classes)
    evaluated = [r for r in history if 'val_mIoU' in r]
    metrics = {'model': cfg.model, 'decoder': cfg.decoder, 'dataset': cfg.dataset, 'num_classes': num_classes,
               'epochs': cfg.epochs, 'updates': state.updates, 'global_batch': plan.global_batch,
               'num_params': num_params, 'train_loss': history[-1]['train_loss'], 'val_mIoU': val['mIoU'],
               'val_pixel_acc': val['pixel_acc'], 'val_mAcc': val['mAcc'],
               'best_val_mIoU': max(r['val_mIoU'] for r in evaluated) if evaluated else val['mIoU'],
               'images_per_sec': history[-1]['images_per_sec'], 'per_class_iou': val['per_class_iou']}
    if env.is_main:
        save_model(model, out / 'model.safetensors')
        write_json(out / 'metrics.json', metrics)
        write_text(out / 'per_class_iou.md', iou_table(val['per_class_iou']))
    D.barrier(env)
    return metrics


def seg_config_for_resume(output: str, overrides: Dict[str, Any]) -> SegTrainConfig:
    """The saved config of the segmentation run in `output`, with the given overrides (which must not change it)."""
    return from_dict(SegTrainConfig, {**read_run_config(output), **overrides, 'resume': True},
                     source=f'{output}/config.yaml')
