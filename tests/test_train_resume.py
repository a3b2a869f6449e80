"""A run killed with SIGKILL and resumed with --resume ends with exactly the weights of an uninterrupted run.

The two killed runs are separate processes; the uninterrupted reference and the last resumed part run in this one
(one torch thread, as the children have): the checkpoint, not the process, must carry every state."""
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from editvit.cli import main
from editvit.train.checkpoint import LAST, load_checkpoint

from .common import kill_after_checkpoint

pytestmark = pytest.mark.slow  # kills and restarts training processes

# everything random is on: Mixup/CutMix, 3-Augment, colour jitter, random resized crop, drop path, EMA, and two
# accumulation steps per update, so every RNG the checkpoint saves matters
ARGS = ['--model', 'edit_tiny_patch16_224', '--model-kwargs', 'img_size=16', 'patch_size=4', 'embed_dim=32',
        'depth=2', 'num_heads=2', '--dataset', 'synthetic', '--num-classes', '4', '--synthetic-samples', '384',
        '--epochs', '3', '--batch-size', '8', '--global-batch-size', '16', '--lr', '2e-3', '--warmup-epochs', '1',
        '--drop-path', '0.1', '--ema', '--ema-decay', '0.9', '--num-workers', '0', '--checkpoint-every', '2',
        '--seed', '7', '--no-progress']


def _command(output: Path, *extra: str):
    return [sys.executable, '-m', 'editvit', 'train', *ARGS, '--output', str(output), *extra]


def test_sigkill_and_resume_gives_identical_weights(tmp_path):
    reference = tmp_path / 'reference'
    assert main(['train', *ARGS, '--output', str(reference)]) == 0

    run = tmp_path / 'interrupted'
    ckpt = run / LAST
    first = kill_after_checkpoint(_command(run), ckpt, min_updates=2)  # mid epoch 0 (24 updates an epoch)
    assert not (run / 'model.safetensors').exists()
    state = load_checkpoint(ckpt)
    assert state['epoch'] == 0 and state['batches_done'] > 0  # the first kill is within an epoch
    (run / f'.{LAST}.abc123.tmp').write_bytes(b'half a checkpoint')  # as a kill during the write would leave
    second = kill_after_checkpoint(_command(run, '--resume'), ckpt, min_updates=first + 24)  # killed again, later
    assert not (run / f'.{LAST}.abc123.tmp').exists()  # the resumed run cleared it
    assert second > first
    assert main(['train', '--output', str(run), '--resume']) == 0

    for name in ('model.safetensors', 'model_ema.safetensors'):
        expected, got = load_file(reference / name), load_file(run / name)
        assert expected.keys() == got.keys()
        for key in expected:
            assert torch.equal(expected[key], got[key]), f'{name}: {key} differs after kill and resume'
    rows = (run / 'summary.csv').read_text().splitlines()
    assert len(rows) == 4  # header and one row per epoch, none repeated by the resumed runs
    ref_rows = (reference / 'summary.csv').read_text().splitlines()
    column = rows[0].split(',').index('train_loss')
    assert [r.split(',')[column] for r in rows[1:]] == [r.split(',')[column] for r in ref_rows[1:]]
