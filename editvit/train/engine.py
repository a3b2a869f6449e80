"""One training epoch and one evaluation pass: the inner loops, with gradient accumulation, DDP, autocast and the
non-finite loss check. Statistics are named sums over images (a batch counts its images, whatever its labels' shape),
summed over ranks in one reduction."""
import contextlib
import math
import sys
import time
from dataclasses import asdict, dataclass
from itertools import islice
from typing import Callable, Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.data import Mixup
from timm.utils import NativeScaler, accuracy, dispatch_clip_grad, unwrap_model
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..errors import DataError, original_message
from .distributed import DistEnv, all_reduce_sums

_AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the run stops before the optimiser applies it."""


def autocast(device: torch.device, amp: str):
    """Mixed precision for the forward pass: bf16 on CPU or GPU, fp16 on GPU, or nothing."""
    if amp == 'none':
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_AMP_DTYPES[amp])


def batches(loader: DataLoader, count: Optional[int] = None):
    """Iterate a loader (at most count batches), turning a worker's DataError into its plain message."""
    try:
        yield from islice(loader, count)
    except DataError as e:
        raise DataError(original_message(e)) from None


@dataclass
class UpdateSums:
    """What the micro-batches of one optimiser update add up, before they are summed over ranks."""
    loss_sum: float = 0.  # loss x images, over finite losses
    images: float = 0.
    non_finite: float = 0.  # micro-batches whose loss was NaN or infinite
    stop: float = 0.  # ranks asked to stop (a signal): every rank stops after the same update

    def add(self, loss: float, images: int) -> None:
        if math.isfinite(loss):
            self.loss_sum += loss * images
        else:
            self.non_finite += 1
        self.images += images

    def over_ranks(self, env: DistEnv) -> Dict[str, float]:
        return all_reduce_sums(asdict(self), env)


@dataclass
class EpochState:
    """Where a run is within an epoch; saved in every checkpoint."""
    epoch: int = 0
    batches_done: int = 0  # micro-batches of this epoch consumed
    updates: int = 0  # optimiser updates since the start of the run
    loss_sum: float = 0.0  # summed over all ranks' images of this epoch
    samples: float = 0.0  # images
    bad_images: int = 0  # skipped undecodable images on this rank, this epoch


def train_one_epoch(
        model: nn.Module,
        loader: DataLoader,
        loss_fn: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler,
        state: EpochState,
        env: DistEnv,
        *,
        updates_per_epoch: int,
        accum_steps: int,
        amp: str = 'none',
        clip_grad: Optional[float] = None,
        mixup: Optional[Mixup] = None,
        scaler: Optional[NativeScaler] = None,
        ema: Optional[nn.Module] = None,
        on_update: Callable[[Dict[str, float]], None] = lambda update: None,
        stop_requested: Callable[[], bool] = lambda: False,
        progress: bool = True,
) -> Dict[str, float]:
    """Train from state.batches_done to the end of state.epoch, calling on_update({'train_loss', 'lr'}) after every
    optimiser update.

    The loss of each update is summed over its accum_steps micro-batches (each weighted 1/accum_steps) and over
    ranks; a NaN or infinite value on any rank raises NonFiniteLossError before the update is applied. When
    stop_requested() is true on any rank, every rank returns after the same update with 'stopped' set.
    """
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    inner = unwrap_model(model)  # the module without DDP / torch.compile wrappers, for the EMA
    total_batches = updates_per_epoch * accum_steps
    bar = tqdm(total=updates_per_epoch, initial=state.batches_done // accum_steps, desc=f'epoch {state.epoch}',
               unit='step', dynamic_ncols=True, leave=False,
               disable=not (progress and env.is_main and sys.stderr.isatty()))
    sums = UpdateSums()
    start = time.perf_counter()
    images_seen = 0
    stopped = False
    for images, labels, bad in batches(loader, total_batches - state.batches_done):
        state.bad_images += bad
        if len(labels) == 0:
            raise DataError('every image of a batch failed to decode; check the data set')
        if mixup is not None and len(labels) % 2:  # a skipped image left an odd batch, which Mixup cannot pair
            images, labels = images[:-1], labels[:-1]
        images, labels = images.to(env.device, non_blocking=True), labels.to(env.device, non_blocking=True)
        targets = labels
        if mixup is not None:
            images, targets = mixup(images, labels)
        last = (state.batches_done + 1) % accum_steps == 0
        sync = contextlib.nullcontext() if (last or not env.distributed) else model.no_sync()
        with sync:
            with autocast(env.device, amp):
                output = model(images)  # (B, num_classes) or, for segmentation, (B, num_classes, H, W)
                loss = loss_fn(output, targets)
            n, value = len(images), loss.item()  # images, whatever the shape of their labels
            sums.add(value, n)
            if last:
                sums.stop = float(stop_requested())
                totals = sums.over_ranks(env)
                if totals['non_finite'] > 0:
                    raise NonFiniteLossError(
                        f'loss is not finite ({"on another micro-batch or rank" if math.isfinite(value) else value}) '
                        f'at epoch {state.epoch}, step {state.batches_done // accum_steps} of the epoch (update '
                        f'{state.updates + 1} of the run); stopped without applying it')
            if scaler is not None:
                scaler(loss / accum_steps, optimizer, clip_grad=clip_grad, parameters=params, need_update=last)
            else:
                (loss / accum_steps).backward()
                if last:
                    if clip_grad is not None:
                        dispatch_clip_grad(params, clip_grad)
                    optimizer.step()
        state.batches_done += 1
        images_seen += n
        if not last:
            continue
        optimizer.zero_grad(set_to_none=True)
        state.updates += 1
        scheduler.step_update(num_updates=state.updates)
        if ema is not None:
            ema.update(inner, step=state.updates)
        state.loss_sum += totals['loss_sum']
        state.samples += totals['images']
        sums = UpdateSums()
        elapsed = time.perf_counter() - start
        bar.set_postfix(loss=f'{totals["loss_sum"] / totals["images"]:.4f}',
                        lr=f'{optimizer.param_groups[0]["lr"]:.2e}',
                        img_s=f'{images_seen * env.world_size / elapsed:.0f}')
        bar.update(1)
        on_update({'train_loss': totals['loss_sum'] / totals['images'], 'lr': optimizer.param_groups[0]['lr']})
        if totals['stop'] > 0:
            stopped = True
            break
    bar.close()
    elapsed = time.perf_counter() - start
    return {'train_loss': state.loss_sum / max(state.samples, 1),
            'images_per_sec': images_seen * env.world_size / max(elapsed, 1e-9), 'stopped': stopped}


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, env: DistEnv, amp: str = 'none') -> Dict[str, float]:
    """Top-1, top-5 (top-k for fewer than 5 classes), cross-entropy loss and images per second over the loader's
    images on all ranks."""
    model.eval()
    sums = dict(loss_sum=0., top1_hits=0., top5_hits=0., images=0., bad_images=0.)
    start = time.perf_counter()
    for images, labels, bad in batches(loader):
        sums['bad_images'] += bad
        if len(labels) == 0:
            continue
        images, labels = images.to(env.device, non_blocking=True), labels.to(env.device, non_blocking=True)
        with autocast(env.device, amp):
            output = model(images)  # (B, num_classes)
        output = output.float()
        n = len(labels)
        top1, top5 = accuracy(output, labels, topk=(1, min(5, output.shape[-1])))
        sums['loss_sum'] += F.cross_entropy(output, labels, reduction='sum').item()
        sums['top1_hits'] += top1.item() * n / 100
        sums['top5_hits'] += top5.item() * n / 100
        sums['images'] += n
    elapsed = time.perf_counter() - start
    sums = all_reduce_sums(sums, env)
    n = max(sums['images'], 1.)
    return {'loss': sums['loss_sum'] / n, 'top1': 100. * round(sums['top1_hits']) / n,
            'top5': 100. * round(sums['top5_hits']) / n, 'images': int(sums['images']),
            'images_per_sec': sums['images'] / max(elapsed, 1e-9), 'bad_images': int(sums['bad_images'])}
