"""`train(config)`: a whole run, from data and model to the final weights, resumable from any checkpoint.

    DIR/config.yaml           the resolved config
    DIR/checkpoint-last.pth   the latest checkpoint (every checkpoint_every updates and at every epoch end)
    DIR/summary.csv           one row per epoch
    DIR/log.txt               the log lines
    DIR/model.safetensors     the final weights (model_ema.safetensors too with EMA)
    DIR/metrics.json          the final metrics
"""
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import timm
import torch
import torch.nn as nn
import yaml
from timm.utils import ModelEmaV3, NativeScaler
from torch.nn.parallel import DistributedDataParallel

from ..data import ShardSampler, create_dataset, create_eval_transform, create_loader, create_train_sampler
from ..data import create_train_transform
from ..weights import save_model
from . import distributed as D
from .checkpoint import LAST, load_checkpoint, restore_run, save_run_checkpoint
from ..errors import ConfigError
from .config import TrainConfig, from_dict, resume_differences, to_dict
from .engine import EpochState, evaluate, train_one_epoch
from ..models.factory import create_model
from .models import input_size, load_finetune_weights
from .recipe import create_loss, create_mixup, create_optimizer, create_scheduler, plan_batches, scaled_lr
from .records import RunLog, write_json, write_summary, write_text
from .rng import seed_everything

SYNTHETIC_IMAGE_SIZE = 32


def read_run_config(output: str) -> Dict[str, Any]:
    """The config a run in `output` was started with (for --resume without repeating every option)."""
    path = Path(output) / 'config.yaml'
    if not path.is_file():
        raise ConfigError(f'nothing to resume in {output!r}: it has no config.yaml')
    return yaml.safe_load(path.read_text())


def check_resume(cfg: TrainConfig, out: Path) -> Optional[Dict[str, Any]]:
    ckpt = out / LAST
    if not cfg.resume:
        if ckpt.exists():
            raise ConfigError(f'{str(out)!r} already holds a run ({LAST}); pass --resume to continue it, or choose '
                              f'another --output')
        return None
    if not ckpt.exists():
        raise ConfigError(f'nothing to resume: {str(ckpt)!r} does not exist')
    for stale in out.glob(f'.{LAST}.*.tmp'):  # a checkpoint being written when the run was killed
        stale.unlink(missing_ok=True)
    state = load_checkpoint(ckpt)
    changes = resume_differences(state['config'], to_dict(cfg))
    if changes:
        raise ConfigError(f'cannot resume the run in {str(out)!r} with a different set-up; it differs in:\n  '
                          + '\n  '.join(changes))
    return state


def _datasets(cfg: TrainConfig):
    kwargs = dict(seed=cfg.seed, val_split_per_class=cfg.val_split_per_class, skip_bad_images=cfg.skip_bad_images,
                  num_classes=cfg.num_classes or 10, image_size=SYNTHETIC_IMAGE_SIZE,
                  synthetic_samples=cfg.synthetic_samples)
    train_set = create_dataset(cfg.dataset, cfg.data_dir, 'train', **kwargs)
    val_set = create_dataset(cfg.dataset, cfg.data_dir, 'val', **kwargs)
    num_classes = len(train_set.classes)
    if cfg.num_classes is not None and cfg.num_classes != num_classes:
        raise ConfigError(f'num_classes is {cfg.num_classes} but dataset {cfg.dataset!r} has {num_classes} classes')
    return train_set, val_set, num_classes


def train(cfg: TrainConfig) -> Dict[str, Any]:
    """Train a model as cfg says; returns the final metrics (also written to output/metrics.json).

    Raises:
        ConfigError, DataError, CheckpointError: bad input, before any training.
        NonFiniteLossError: the loss became NaN or infinite; the last checkpoint is kept.
    """
    return D.run_distributed(_train, cfg)


def _train(cfg: TrainConfig, env: D.DistEnv) -> Dict[str, Any]:
    out = Path(cfg.output)
    if cfg.amp == 'fp16' and env.device.type != 'cuda':
        raise ConfigError("amp 'fp16' needs a GPU (its grad scaler is CUDA-only); use 'bf16' or 'none' on CPU")
    resumed = check_resume(cfg, out)
    plan = plan_batches(cfg, env.world_size)
    if resumed is not None and len(resumed['ranks']) != env.world_size:
        raise ConfigError(f'the run in {str(out)!r} was trained on {len(resumed["ranks"])} processes, now '
                          f'{env.world_size}: resume it with the same number')

    # identical initial weights on every rank; rank-dependent randomness (drop path, Mixup) afterwards
    seed_everything(cfg.seed)
    train_set, val_set, num_classes = _datasets(cfg)
    model = create_model(cfg.model, num_classes, cfg.model_kwargs, drop_path=cfg.drop_path,
                         layer_scale_init=cfg.layer_scale_init)
    if cfg.finetune and resumed is None:
        load_finetune_weights(model, cfg.finetune)
    if cfg.grad_checkpointing:
        model.set_grad_checkpointing(True)
    model.to(env.device)
    seed_everything(cfg.seed + env.rank)

    data_cfg = timm.data.resolve_model_data_config(model)
    size = input_size(model)
    train_tf = create_train_transform(size, data_cfg['mean'], data_cfg['std'], crop=cfg.crop, hflip=cfg.hflip,
                                      three_augment=cfg.three_augment, color_jitter=cfg.color_jitter,
                                      interpolation=data_cfg['interpolation'])
    eval_tf = create_eval_transform(size, data_cfg['mean'], data_cfg['std'], crop_ratio=cfg.eval_crop_ratio,
                                    interpolation=data_cfg['interpolation'])
    sampler = create_train_sampler(train_set, cfg.seed, env.rank, env.world_size, cfg.repeated_aug)
    pin = env.device.type == 'cuda'
    train_loader = create_loader(train_set, train_tf, sampler, cfg.batch_size, cfg.num_workers, drop_last=True,
                                 pin_memory=pin, seed=cfg.seed + env.rank)
    val_loader = create_loader(val_set, eval_tf, ShardSampler(len(val_set), env.rank, env.world_size),
                               cfg.batch_size, cfg.num_workers, pin_memory=pin, seed=cfg.seed)
    updates_per_epoch = len(sampler) // cfg.batch_size // plan.accum_steps
    if updates_per_epoch == 0:
        raise ConfigError(f'the training set has {len(train_set)} images: too few for one update of '
                          f'{plan.global_batch} images (batch_size {cfg.batch_size} x {env.world_size} processes x '
                          f'{plan.accum_steps} accumulation steps)')

    lr = scaled_lr(cfg, plan.global_batch)
    optimizer = create_optimizer(model, cfg, lr)
    scheduler = create_scheduler(optimizer, cfg, updates_per_epoch)
    mixup = create_mixup(cfg, num_classes)
    loss_fn = create_loss(cfg, mixup is not None)
    scaler = NativeScaler(device=env.device.type) if cfg.amp == 'fp16' else None
    ema = ModelEmaV3(model, decay=cfg.ema_decay) if cfg.ema else None
    train_model: nn.Module = model
    if env.distributed:
        train_model = DistributedDataParallel(model, device_ids=[env.local_rank] if pin else None)
    if cfg.compile:
        train_model = torch.compile(train_model)

    state = EpochState()
    history: List[Dict[str, Any]] = []
    if resumed is not None:
        state, history = restore_run(resumed, env.rank, model, optimizer, scheduler, scaler, ema)

    log = RunLog(out, env.is_main, cfg.tensorboard)
    if env.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / 'config.yaml', yaml.safe_dump(to_dict(cfg), sort_keys=False))
    num_params = sum(p.numel() for p in model.parameters())
    log.line(f'{"resuming" if resumed else "training"} {cfg.model} ({num_params / 1e6:.2f}M parameters) on '
             f'{cfg.dataset} ({len(train_set)} train / {len(val_set)} val images, {num_classes} classes)'
             f' | {env.world_size} process(es) on {env.device.type} | global batch {plan.global_batch} = '
             f'{cfg.batch_size} x {env.world_size} x {plan.accum_steps} accumulation | lr {lr:.3g} | '
             f'{updates_per_epoch} updates/epoch'
             + (f' | from epoch {state.epoch} batch {state.batches_done}' if resumed else ''))

    def checkpoint() -> None:
        save_run_checkpoint(out / LAST, env, state, model, optimizer, scheduler, scaler, history, to_dict(cfg), ema)

    def on_update() -> None:
        if cfg.checkpoint_every and state.updates % cfg.checkpoint_every == 0 \
                and state.batches_done < updates_per_epoch * plan.accum_steps:
            checkpoint()

    try:
        while state.epoch < cfg.epochs:
            start = time.perf_counter()
            sampler.set_epoch(state.epoch, start=state.batches_done * cfg.batch_size)
            stats = train_one_epoch(
                train_model, train_loader, loss_fn, optimizer, scheduler, state, env,
                updates_per_epoch=updates_per_epoch, accum_steps=plan.accum_steps, amp=cfg.amp,
                clip_grad=cfg.clip_grad, mixup=mixup, scaler=scaler, ema=ema, on_update=on_update,
                progress=cfg.progress)
            val = evaluate(model, val_loader, env, cfg.amp)
            bad = int(D.all_reduce_sum(torch.tensor([float(state.bad_images)]), env)[0]) + val['bad_images']
            row = {'epoch': state.epoch, 'train_loss': round(stats['train_loss'], 6),
                   'lr': float(f"{optimizer.param_groups[0]['lr']:.6g}"), 'val_loss': round(val['loss'], 6),
                   'val_top1': round(val['top1'], 4), 'val_top5': round(val['top5'], 4)}
            if ema is not None:
                row['ema_val_top1'] = round(evaluate(ema.module, val_loader, env, cfg.amp)['top1'], 4)
            row.update(images_per_sec=round(stats['images_per_sec'], 1),
                       epoch_seconds=round(time.perf_counter() - start, 2), bad_images=bad)
            history.append(row)
            log.line(' | '.join(f'{k} {v}' for k, v in row.items()))
            log.scalars({k: v for k, v in row.items() if k != 'epoch'}, state.epoch)
            state = EpochState(state.epoch + 1, 0, state.updates)
            checkpoint()
            if env.is_main:
                write_summary(out / 'summary.csv', history)
    finally:
        log.close()
    if env.is_main:
        write_summary(out / 'summary.csv', history)

    last = history[-1]
    metrics = {'model': cfg.model, 'dataset': cfg.dataset, 'num_classes': num_classes, 'epochs': cfg.epochs,
               'updates': state.updates, 'global_batch': plan.global_batch, 'lr': lr,
               'num_params': num_params,
               'train_loss': last['train_loss'], 'val_loss': last['val_loss'], 'val_top1': last['val_top1'],
               'val_top5': last['val_top5'], 'best_val_top1': max(r['val_top1'] for r in history),
               'images_per_sec': last['images_per_sec'], 'bad_images': sum(r['bad_images'] for r in history)}
    if ema is not None:
        metrics['ema_val_top1'] = last['ema_val_top1']
    if env.is_main:
        save_model(model, out / 'model.safetensors')
        if ema is not None:
            save_model(ema.module, out / 'model_ema.safetensors')
        write_json(out / 'metrics.json', metrics)
    D.barrier(env)
    return metrics


def config_for_resume(output: str, overrides: Dict[str, Any]) -> TrainConfig:
    """The saved config of the run in `output`, with the given overrides (which must not change the run)."""
    return from_dict(TrainConfig, {**read_run_config(output), **overrides, 'resume': True},
                     source=f'{output}/config.yaml')

