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


def test_two_processes_killed_and_resumed_end_with_the_weights_of_an_uninterrupted_run(tmp_path):
    import signal
    import time

    from safetensors.torch import load_file

    args = ['train', *MODEL, *DATA, '--synthetic-samples', '128', '--epochs', '3', '--batch-size', '4',
            '--global-batch-size', '16', '--lr',
            '5e-3', '--warmup-epochs', '1', '--drop-path', '0.1', '--checkpoint-every', '2', '--seed', '3',
            '--no-progress', '--threads', '1']
    reference, run = tmp_path / 'reference', tmp_path / 'run'
    _torchrun(*args, '--output', str(reference))

    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', '-m', 'editvit',
           *args, '--output', str(run)]
    proc = subprocess.Popen(cmd, env=dict(os.environ, OMP_NUM_THREADS='1'), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)

    def kill_all() -> None:  # both ranks (torchrun starts each in a session of its own) and torchrun itself
        for pid in _children(proc.pid):
            os.kill(pid, signal.SIGKILL)
        proc.kill()

    killed_after = None
    try:
        while proc.poll() is None and killed_after is None:
            try:
                updates = int(torch.load(run / LAST, weights_only=True)['updates'])
            except Exception:  # not written yet, or being renamed into place
                updates = -1
            if updates >= 10:  # in epoch 1 (8 updates an epoch, two micro-batches each)
                kill_all()  # no time to save anything
                killed_after = updates
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            kill_all()
        proc.wait()
    time.sleep(1)
    assert killed_after is not None and killed_after < 3 * 8
    assert not (run / 'model.safetensors').exists() and 'epoch 2 |' not in (run / 'log.txt').read_text()
    _torchrun('train', '--output', str(run), '--resume', '--threads', '1')

    expected, got = load_file(reference / 'model.safetensors'), load_file(run / 'model.safetensors')
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), f'{key} differs after kill and resume'
    assert 'resuming' in (run / 'log.txt').read_text()
