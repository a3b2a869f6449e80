"""Training checkpoints: everything a run needs to continue bit-exactly, written atomically, read weights-only.

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
from typing import Any, Dict, Union

import torch

from ..weights import CheckpointError, atomic_write, read_file

LAST = 'checkpoint-last.pth'
REQUIRED_KEYS = ('model', 'optimizer', 'scheduler', 'epoch', 'batches_done', 'updates', 'ranks', 'config')


def save_checkpoint(path: Union[str, Path], state: Dict[str, Any]) -> Path:
    """Write state to path atomically (temporary file, fsync, rename): a kill at any moment leaves the previous
    checkpoint or the new one, never a torn file."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Union[str, Path]) -> Dict[str, Any]:
    """Read a training checkpoint (weights only: refuses pickled code) and check that it is one."""
    state = read_file(path)
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f'{str(path)!r} is not an editvit training checkpoint (it lacks {", ".join(missing)}); '
                              f'to start from its weights use --finetune')
    return state
