"""Two CPU processes under torchrun (gloo): distributed samplers, metrics summed over ranks, only rank 0 writes."""
import json
import os
import subprocess
import sys

import pytest
import timm
import torch

from editvit.cli import main
from editvit.train.checkpoint import LAST, load_checkpoint

pytestmark = pytest.mark.slow  # torchrun starts two processes

MODEL = ['--model', 'edit_tiny_patch16_224', '--model-kwargs', 'img_size=16', 'patch_size=4', 'embed_dim=32',
         'depth=2', 'num_heads=2']
DATA = ['--dataset', 'synthetic', '--num-classes', '4', '--synthetic-samples', '64', '--num-workers', '0']


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', '-m', 'editvit',
           *args]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_two_process_training_and_evaluation(tmp_path, capsys):
    out = tmp_path / 'run'
    _torchrun('train', *MODEL, *DATA, '--output', str(out), '--epochs', '2', '--batch-size', '8', '--lr', '5e-3',
              '--warmup-epochs', '0', '--mixup', '0', '--cutmix', '0', '--no-progress')

    state = load_checkpoint(out / LAST)
    assert state['config']['batch_size'] == 8
    assert len(state['ranks']) == 2  # both ranks' RNG states, for an exact resume
    assert not torch.equal(state['ranks'][0]['rng']['torch'], state['ranks'][1]['rng']['torch'])
    assert state['updates'] == 2 * 4  # 64 images / (8 per rank x 2 ranks) = 4 updates an epoch
    log = (out / 'log.txt').read_text()
    assert log.count('epoch 1 |') == 1  # written by rank 0 only
    assert '2 process(es)' in log
    metrics = json.loads((out / 'metrics.json').read_text())
    assert metrics['global_batch'] == 16 and metrics['updates'] == 8

    # the validation metrics, summed over the two ranks' shares, equal a single-process evaluation of the weights
    capsys.readouterr()
    assert main(['eval', *MODEL, *DATA, '--checkpoint', str(out / 'model.safetensors'), '--batch-size', '5']) == 0
    one = json.loads(capsys.readouterr().out)
    assert one['images'] == 16
    assert abs(one['top1'] - metrics['val_top1']) < 1e-3 and abs(one['top5'] - metrics['val_top5']) < 1e-3
    assert abs(one['loss'] - metrics['val_loss']) < 1e-5

    # the final weights load with timm (num_classes in the overlay, or timm drops the head as a 1000-class one)
    model = timm.create_model('edit_tiny_patch16_224', pretrained=True, img_size=16, patch_size=4, embed_dim=32,
                              depth=2, num_heads=2, num_classes=4,
                              pretrained_cfg_overlay=dict(file=str(out / 'model.safetensors'), num_classes=4))
    for key, value in model.state_dict().items():
        assert torch.equal(value, state['model'][key]), key


def _children(pid: int):
    with open(f'/proc/{pid}/task/{pid}/children') as f:
        return [int(p) for p in f.read().split()]


def _rank_of(pid: int) -> int:
    with open(f'/proc/{pid}/environ', 'rb') as f:
        env = dict(item.split(b'=', 1) for item in f.read().split(b'\0') if b'=' in item)
    return int(env[b'RANK'])


def test_a_signal_to_one_rank_stops_every_rank_after_the_same_update(tmp_path):
    import re
    import signal
    import time

    out = tmp_path / 'run'
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', '-m', 'editvit',
           'train', *MODEL, *DATA, '--output', str(out), '--epochs', '1000', '--batch-size', '8', '--no-progress',
           '--threads', '1']
    proc = subprocess.Popen(cmd, env=dict(os.environ, OMP_NUM_THREADS='1'), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith('training'), proc.stderr.read()
        time.sleep(1)
        rank1 = next(pid for pid in _children(proc.pid) if _rank_of(pid) == 1)
        os.kill(rank1, signal.SIGTERM)  # rank 0 learns of it through the statistics summed after each update
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    state = load_checkpoint(out / LAST)
    assert len(state['ranks']) == 2 and state['updates'] >= 1
    where = f'at epoch {state["epoch"]}, update {state["updates"]}; checkpoint saved. Resume with: editvit train ' \
            f'--resume --output {out}'
    assert f'editvit train: stopped by SIGTERM {where}' in err  # rank 1
    assert f'editvit train: stopped by a signal to another process {where}' in err  # rank 0, at the same update
    assert re.search(r'stopped by a signal to another process at epoch \d+, update \d+',
                     (out / 'log.txt').read_text())
