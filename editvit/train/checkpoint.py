"""Training checkpoints: everything a run needs to continue bit-exactly, written atomically, read weights-only; and
the check of a checkpoint against the config that resumes it (the run folder's own checks are `RunFolder`'s).

A checkpoint is a dict of tensors and plain data (no pickled classes), so `torch.load(weights_only=True)` reads it:

    model, optimizer, scheduler, scaler, ema   state dicts (model and ema without DDP/compile prefixes)
    epoch, batches_done                        position: `batches_done` micro-batches of `epoch` are consumed
    updates                                    optimiser updates so far
    epoch_loss_sum, epoch_samples              the running train loss of the current epoch
    ranks                                      per rank: its RNG states (python, numpy, torch, CUDA), bad images
    history                                    the rows of summary.csv so far
    config                                     the resolved TrainConfig as a dict
"""
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Type, TypeVar, Union

import torch
import torch.nn as nn
from timm.utils import unwrap_model

from ..errors import CheckpointError, ConfigError
from ..weights import atomic_write, clean_state_dict, read_file
from . import distributed as D
from .config import check_run_kind, from_dict, read_yaml, resume_differences, to_dict
from .engine import EpochState
from .records import naming
from .rng import get_rng_state, set_rng_state

C = TypeVar('C')

LAST = 'checkpoint-last.pth'
REQUIRED_KEYS = ('model', 'optimizer', 'scheduler', 'epoch', 'batches_done', 'updates', 'ranks', 'config')


class _KeepWriteError:
    """A file for torch.save that keeps the OSError of a failed write: torch reports a full disk only as
    'unexpected pos'."""

    def __init__(self, file: Any) -> None:
        self.file, self.error = file, None

    def write(self, data: Any) -> int:
        try:
            return self.file.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.file.flush()


def _torch_save(state: Dict[str, Any], tmp: str, path: Path) -> None:
    with open(tmp, 'wb') as f:
        stream = _KeepWriteError(f)
        try:
            torch.save(state, stream)
        except RuntimeError:
            if stream.error is None:
                raise
            raise OSError(stream.error.errno, stream.error.strerror, str(path)) from None


def save_checkpoint(path: Union[str, Path], state: Dict[str, Any]) -> Path:
    """Write state to path atomically (temporary file, fsync, rename): a kill at any moment leaves the previous
    checkpoint or the new one, never a torn file. A failed write (a full disk) is an OSError naming path."""
    path = Path(path)
    with naming(path):
        return atomic_write(path, lambda tmp: _torch_save(state, tmp, path))


def load_checkpoint(path: Union[str, Path]) -> Dict[str, Any]:
    """Read a training checkpoint (weights only: refuses pickled code) and check that it is one."""
    state = read_file(path)
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f'{str(path)!r} is not an editvit training checkpoint (it lacks {", ".join(missing)}); '
                              f'to start from its weights use --finetune')
    return state


def save_run_checkpoint(path: Union[str, Path], env: D.DistEnv, state: EpochState, model: nn.Module,
                        optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Optional[Any],
                        history: List[Dict[str, Any]], config: Dict[str, Any],
                        ema: Optional[nn.Module] = None) -> None:
    """Gather every rank's RNG state and bad-image count, and let rank 0 write the run's checkpoint (a collective:
    every rank calls it)."""
    ranks = D.all_gather({'rng': get_rng_state(), 'bad_images': state.bad_images}, env)
    if not env.is_main:
        return
    save_checkpoint(path, {
        'model': clean_state_dict(unwrap_model(model).state_dict()), 'optimizer': optimizer.state_dict(),
        'scheduler': scheduler.state_dict(), 'scaler': scaler.state_dict() if scaler is not None else None,
        'ema': ema.module.state_dict() if ema is not None else None,
        'epoch': state.epoch, 'batches_done': state.batches_done, 'updates': state.updates,
        'epoch_loss_sum': state.loss_sum, 'epoch_samples': state.samples, 'ranks': ranks,
        'history': history, 'config': config})


def restore_run(resumed: Dict[str, Any], rank: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                scheduler: Any, scaler: Optional[Any], ema: Optional[nn.Module] = None, extended: bool = False,
                ) -> Tuple[EpochState, List[Dict[str, Any]]]:
    """Load a run checkpoint's states into the run's objects and this rank's RNG states; return the position in
    the run and the summary rows so far. An extended run (more epochs than saved) keeps its new scheduler, which
    sets the lr of the longer schedule at the run's update."""
    model.load_state_dict(resumed['model'])
    optimizer.load_state_dict(resumed['optimizer'])
    if extended:
        scheduler.step_update(num_updates=resumed['updates'])
    else:
        scheduler.load_state_dict(resumed['scheduler'])
    if scaler is not None:
        scaler.load_state_dict(resumed['scaler'])
    if ema is not None:
        ema.module.load_state_dict(resumed['ema'])
    mine = resumed['ranks'][rank]
    set_rng_state(mine['rng'])
    state = EpochState(resumed['epoch'], resumed['batches_done'], resumed['updates'], resumed['epoch_loss_sum'],
                       resumed['epoch_samples'], mine['bad_images'])
    return state, list(resumed['history'])


def read_run_config(output: Union[str, Path]) -> Dict[str, Any]:
    """The config a run in `output` was started with (for --resume without repeating every option)."""
    path = Path(output) / 'config.yaml'
    if Path(output).exists() and not Path(output).is_dir():
        raise ConfigError(f'nothing to resume: {str(output)!r} is a file, not a run folder')
    if not path.is_file():
        raise ConfigError(f'nothing to resume in {str(output)!r}: no run was started here (it has no config.yaml)')
    return read_yaml(path)


def config_for_resume(output: str, overrides: Dict[str, Any], cls: Type[C]) -> C:
    """The saved config (a `cls`) of the run in `output`, with the given overrides (which must not change the run).
    The saved `overwrite` (how the run was started) is not taken over."""
    saved = {k: v for k, v in read_run_config(output).items() if k != 'overwrite'}
    check_run_kind(saved, cls, output)
    return from_dict(cls, {**saved, **overrides, 'resume': True}, source=f'{output}/config.yaml')


def check_resume(cfg: Any, out: Path) -> Optional[Dict[str, Any]]:
    """The checkpoint to resume from (None for a new run), once it and cfg agree: saved with the same set-up (epochs
    may grow). The folder itself is checked by `RunFolder.open` first."""
    if not cfg.resume:
        return None
    state = load_checkpoint(out / LAST)
    changes = resume_differences(state['config'], to_dict(cfg), getattr(cfg, 'RESUME_FREE_KEYS', ()))
    if changes:
        raise ConfigError(f'cannot resume the run in {str(out)!r} with a different set-up; it differs in:\n  '
                          + '\n  '.join(changes))
    return state
