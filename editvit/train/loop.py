"""The run loop of every training command: a `Task` says what is trained, `run_task` says how.

The loop owns epochs, gradient accumulation, autocast, the non-finite loss check (all in `engine.train_one_epoch`),
checkpoints with every rank's RNG states, exact resume, DDP and torch.compile wrapping, summary.csv / log.txt /
TensorBoard, and the final weights and metrics. A task supplies, through its hooks, in the order they are called:

    create_model(env, resumed)      data sets and the model (under the same seed on every rank: identical weights)
    create_loader(model, env)       the training sampler (`set_epoch(epoch, start)`) and loader, under the rank's seed
    create_optimizer(model, global_batch, updates_per_epoch)   the optimizer and a timm scheduler (`step_update`)
    create_loss(), create_ema(model)    the training loss (and Mixup), an EMA of the weights or None
    describe()                      what is trained on what, for the first log line
    evaluate(model, ema, epoch)     the validation columns of the epoch's row ({} to skip this epoch)
    final_metrics(model, history)   the task's entries of metrics.json, after the loop's common ones
    save_outputs(out, metrics)      files beyond model.safetensors and metrics.json (rank 0)

The task's config (`task.cfg`) carries the run fields every command has: output, resume, overwrite, seed, epochs,
batch_size, global_batch_size, amp, clip_grad, compile, checkpoint_every, tensorboard, progress, threads, model and
dataset; a config with a `max_steps` other than None ends the run after that many updates, within an epoch if need
be (that epoch's row and checkpoint are written as at an epoch's end). A run folder (checked and locked by
`RunFolder`; docs/guarantees.md says what is promised):

    DIR/config.yaml           the resolved config
    DIR/checkpoint-last.pth   the latest checkpoint (every checkpoint_every updates, at every epoch end, on a stop)
    DIR/summary.csv           one row per epoch, with the threads and the 1-minute load of the machine
    DIR/training.png          loss, lr and the validation metric per epoch, redrawn after every epoch
    DIR/log.txt               the log lines (and DIR/tensorboard/ if asked: per epoch and per update)
    DIR/model.safetensors     the final weights (model_ema.safetensors too with an EMA)
    DIR/metrics.json          the final metrics, written last: the run is finished once it exists
    DIR/.lock                 held by the process that writes the run
"""
import json
import signal
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import yaml
from timm.data import Mixup
from timm.utils import ModelEmaV3, NativeScaler, random_seed
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ..errors import ConfigError
from ..threads import one_minute_load
from ..weights import save_model
from . import distributed as D
from .checkpoint import LAST, check_resume, restore_run, save_run_checkpoint
from .config import to_dict
from .curves import PLOTS_EXTRA, plot_training
from .engine import EpochState, train_one_epoch
from .recipe import plan_batches
from .records import RunLog, naming, write_json, write_summary, write_text
from .run_folder import FINISHED, RunFinished, RunFolder
from .stop import RunInterrupted, StopRequest


class Task:
    """One kind of training run (classification, segmentation, ...): what the run loop trains and how it scores it.

    Subclasses implement the hooks below; the loop calls each once, in the order of the module docstring, except
    `evaluate` (once per epoch).
    """
    find_unused_parameters = False  # for DDP: True when some weights get no gradient in the task's forward pass
    command = 'editvit train'  # the command line that runs the task, for the messages that say how to resume

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg

    def create_model(self, env: D.DistEnv, resumed: bool) -> nn.Module:
        raise NotImplementedError

    def create_loader(self, model: nn.Module, env: D.DistEnv) -> Tuple[Any, DataLoader]:
        raise NotImplementedError

    def create_optimizer(self, model: nn.Module, global_batch: int,
                         updates_per_epoch: int) -> Tuple[torch.optim.Optimizer, Any]:
        raise NotImplementedError

    def create_loss(self) -> Tuple[nn.Module, Optional[Mixup]]:
        raise NotImplementedError

    def create_ema(self, model: nn.Module) -> Optional[ModelEmaV3]:
        return None

    def describe(self) -> str:
        raise NotImplementedError

    def evaluate(self, model: nn.Module, ema: Optional[ModelEmaV3], env: D.DistEnv, epoch: int) -> Dict[str, Any]:
        """The epoch's validation columns; a 'bad_images' entry is added to the training's count of the row."""
        raise NotImplementedError

    def final_metrics(self, model: nn.Module, env: D.DistEnv, history: List[Dict[str, Any]]) -> Dict[str, Any]:
        raise NotImplementedError

    def save_outputs(self, out: Path, metrics: Dict[str, Any]) -> None:
        pass


def _open_folder(folder: RunFolder, cfg: Any, env: D.DistEnv, command: str) -> None:
    """Rank 0 checks the run folder and takes its lock; every rank raises the same error if that fails."""
    error: Optional[ConfigError] = None
    if env.is_main:
        try:
            folder.open(cfg.resume, cfg.overwrite, command, epochs=cfg.epochs)
        except ConfigError as e:
            error = e
    error = D.broadcast(error, env)
    if error is not None:
        raise error


def run_task(task: Task, env: D.DistEnv) -> Dict[str, Any]:
    """Train task's model as task.cfg says, resuming the run in cfg.output if asked; returns the final metrics (also
    written to output/metrics.json). A resume of a finished run changes nothing and returns its metrics.

    The run folder is locked for the whole run (`RunFolder`). SIGINT or SIGTERM stops the run after the current
    optimiser update (on every rank), with a checkpoint to resume from.

    Raises:
        ConfigError, DataError, CheckpointError: bad input, before any training.
        NonFiniteLossError: the loss became NaN or infinite; the last checkpoint is kept.
        RunInterrupted: stopped by a signal; the checkpoint is written.
    """
    cfg = task.cfg
    out = Path(cfg.output)
    if cfg.amp == 'fp16' and env.device.type != 'cuda':
        raise ConfigError("amp 'fp16' needs a GPU (its grad scaler is CUDA-only); use 'bf16' or 'none' on CPU")
    folder = RunFolder(out)
    try:
        _open_folder(folder, cfg, env, task.command)
    except RunFinished as e:
        if folder.has_checkpoint():  # (a finished run may have had its checkpoint deleted)
            check_resume(cfg, out)  # a different set-up is an error, not a finished run
        if env.is_main:
            print(e, flush=True)
        return json.loads((out / FINISHED).read_text())
    try:
        with StopRequest() as stop:
            return _run(task, env, out, stop)
    finally:
        folder.unlock()


def _run(task: Task, env: D.DistEnv, out: Path, stop: StopRequest) -> Dict[str, Any]:
    cfg = task.cfg
    resumed = check_resume(cfg, out)
    plan = plan_batches(cfg, env.world_size)
    if resumed is not None and len(resumed['ranks']) != env.world_size:
        raise ConfigError(f'the run in {str(out)!r} was trained on {len(resumed["ranks"])} processes, now '
                          f'{env.world_size}: resume it with the same number')
    extended_from = resumed['config']['epochs'] if resumed and resumed['config']['epochs'] != cfg.epochs else None

    # identical initial weights on every rank; rank-dependent randomness (drop path, Mixup, augmentation) afterwards
    random_seed(cfg.seed)
    model = task.create_model(env, resumed is not None)
    model.to(env.device)
    random_seed(cfg.seed, env.rank)

    sampler, train_loader = task.create_loader(model, env)
    updates_per_epoch = len(sampler) // cfg.batch_size // plan.accum_steps
    if updates_per_epoch == 0:
        images = len(getattr(train_loader, 'dataset', sampler))  # TensorBatches hold no .dataset
        raise ConfigError(f'the training set has {images} images: too few for one update of '
                          f'{plan.global_batch} images (batch_size {cfg.batch_size} x {env.world_size} processes x '
                          f'{plan.accum_steps} accumulation steps)')
    optimizer, scheduler = task.create_optimizer(model, plan.global_batch, updates_per_epoch)
    lr = optimizer.param_groups[0]['initial_lr']  # the peak learning rate, as the timm scheduler keeps it
    loss_fn, mixup = task.create_loss()
    scaler = NativeScaler(device=env.device.type) if cfg.amp == 'fp16' else None
    ema = task.create_ema(model)
    train_model: nn.Module = model
    if env.distributed:
        train_model = DistributedDataParallel(model, device_ids=[env.local_rank] if env.device.type == 'cuda' else None,
                                              find_unused_parameters=task.find_unused_parameters)
    if cfg.compile:
        train_model = torch.compile(train_model)

    max_steps = getattr(cfg, 'max_steps', None) or float('inf')
    state = EpochState()
    history: List[Dict[str, Any]] = []
    if resumed is not None:
        state, history = restore_run(resumed, env.rank, model, optimizer, scheduler, scaler, ema,
                                     extended=extended_from is not None)

    log = RunLog(out, env.is_main, cfg.tensorboard)
    if env.is_main:
        write_text(out / 'config.yaml', yaml.safe_dump(to_dict(cfg), sort_keys=False))
    num_params = sum(p.numel() for p in model.parameters())
    threads = torch.get_num_threads()
    log.line(f'{"resuming" if resumed else "training"} {task.describe()} | {num_params / 1e6:.2f}M parameters | '
             f'{env.world_size} process(es) on {env.device.type}, {threads} thread(s) each, load '
             f'{one_minute_load()} | global batch {plan.global_batch} = {cfg.batch_size} x {env.world_size} x '
             f'{plan.accum_steps} accumulation | lr {lr:.3g} | {updates_per_epoch} updates/epoch'
             + (f' | from epoch {state.epoch} batch {state.batches_done}' if resumed else ''))
    if extended_from is not None:
        log.line(f'extending the run from {extended_from} to {cfg.epochs} epochs: from here on the learning rate '
                 f'follows the schedule of a {cfg.epochs}-epoch run (at update {state.updates}: '
                 f'{optimizer.param_groups[0]["lr"]:.3g})')
    warmup = getattr(scheduler, 'warmup_t', 0) or 0  # updates of a timm scheduler's warm-up
    if warmup and warmup >= cfg.epochs * updates_per_epoch:
        log.line(f'warning: the warm-up ({warmup / updates_per_epoch:g} epochs) is as long as the run ({cfg.epochs} '
                 f'epochs): the learning rate only rises and never reaches its peak {lr:.3g}; lower --warmup-epochs')

    def checkpoint() -> None:
        save_run_checkpoint(out / LAST, env, state, model, optimizer, scheduler, scaler, history, to_dict(cfg), ema)

    def on_update(update: Dict[str, float]) -> None:
        log.scalars(update, state.updates, prefix='update/')
        if cfg.checkpoint_every and state.updates % cfg.checkpoint_every == 0 \
                and state.batches_done < updates_per_epoch * plan.accum_steps:
            checkpoint()

    def stopped(epoch: int) -> RunInterrupted:
        name = stop.requested or 'SIGTERM'  # under DDP another rank may have received it
        message = (f'stopped by {stop.requested or "a signal to another process"} at epoch {epoch}, update '
                   f'{state.updates}; checkpoint saved. Resume with: {task.command} --resume --output {out}')
        log.line(message, echo=False)
        return RunInterrupted(message, getattr(signal, name))

    try:
        if D.all_reduce_sums({'stop': float(stop.requested is not None)}, env)['stop'] > 0:
            checkpoint()  # asked to stop while setting up: the run can resume from here
            raise stopped(state.epoch)
        while state.epoch < cfg.epochs and state.updates < max_steps:
            start = time.perf_counter()
            sampler.set_epoch(state.epoch, start=state.batches_done * cfg.batch_size)
            epoch_updates = min(updates_per_epoch, max_steps - state.updates + state.batches_done // plan.accum_steps)
            stats = train_one_epoch(
                train_model, train_loader, loss_fn, optimizer, scheduler, state, env,
                updates_per_epoch=epoch_updates, accum_steps=plan.accum_steps, amp=cfg.amp,
                clip_grad=cfg.clip_grad, mixup=mixup, scaler=scaler, ema=ema, on_update=on_update,
                stop_requested=lambda: stop.requested is not None, progress=cfg.progress)
            if stats['stopped'] and state.batches_done < epoch_updates * plan.accum_steps:
                checkpoint()  # within the epoch: resume from this update
                raise stopped(state.epoch)
            val = task.evaluate(model, ema, env, state.epoch)
            bad = int(D.all_reduce_sums({'bad_images': state.bad_images}, env)['bad_images']) + val.pop('bad_images', 0)
            row = {'epoch': state.epoch, 'train_loss': round(stats['train_loss'], 6),
                   'lr': float(f"{optimizer.param_groups[0]['lr']:.6g}"), **val,
                   'images_per_sec': round(stats['images_per_sec'], 1),
                   'epoch_seconds': round(time.perf_counter() - start, 2), 'bad_images': bad,
                   'threads': threads, 'load': one_minute_load()}
            history.append(row)
            log.line(' | '.join(f'{k} {v}' for k, v in row.items()))
            log.scalars({k: v for k, v in row.items() if k != 'epoch'}, state.epoch)
            state = EpochState(state.epoch + 1, 0, state.updates)
            checkpoint()
            if env.is_main:
                write_summary(out / 'summary.csv', history)
                if plot_training(history, out / 'training.png', f'{cfg.model} on {cfg.dataset}') is None:
                    log.line_once('plots', f'training.png is not drawn: matplotlib is missing ({PLOTS_EXTRA})')
            if stats['stopped'] and state.epoch < cfg.epochs and state.updates < max_steps:  # checkpoint written
                raise stopped(state.epoch - 1)
    finally:
        log.close()
    if env.is_main:
        write_summary(out / 'summary.csv', history)

    last = history[-1]
    metrics = {'model': cfg.model, 'dataset': cfg.dataset, 'epochs': cfg.epochs, 'updates': state.updates,
               'global_batch': plan.global_batch, 'lr': lr, 'num_params': num_params, 'train_loss': last['train_loss'],
               'images_per_sec': last['images_per_sec'], 'bad_images': sum(r['bad_images'] for r in history),
               **task.final_metrics(model, env, history), 'threads': threads, 'load': one_minute_load()}
    if env.is_main:
        with naming(out / 'model.safetensors'):
            save_model(model, out / 'model.safetensors')
        if ema is not None:
            with naming(out / 'model_ema.safetensors'):
                save_model(ema.module, out / 'model_ema.safetensors')
        task.save_outputs(out, metrics)
        write_json(out / FINISHED, metrics)  # last: a run is finished once its metrics are written
    D.barrier(env)
    return metrics
