"""What a run promises (docs/guarantees.md), tried with real processes: a signal stops a run with a checkpoint and
one line, and the resumed run ends with the same bytes; one run per folder; no result replaced unasked; a finished
run is left alone or explicitly extended; a full disk is named."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from editvit.cli import main
from editvit.train import TrainConfig, train
from editvit.train.checkpoint import LAST, load_checkpoint

ARGS = ['--model', 'edit_tiny_patch16_224', '--model-kwargs', 'img_size=16', 'patch_size=4', 'embed_dim=32',
        'depth=2', 'num_heads=2', '--dataset', 'synthetic', '--num-classes', '4', '--synthetic-samples', '96',
        '--epochs', '3', '--batch-size', '8', '--global-batch-size', '16', '--lr', '2e-3', '--warmup-epochs', '1',
        '--drop-path', '0.1', '--num-workers', '0', '--checkpoint-every', '0', '--seed', '7', '--no-progress',
        '--threads', '1']


def _command(output: Path, *extra: str):
    return [sys.executable, '-m', 'editvit', 'train', *ARGS, '--output', str(output), *extra]


def _env():
    return dict(os.environ, OMP_NUM_THREADS='1', PYTHONHASHSEED='0')


def _start(cmd, until: str = '') -> subprocess.Popen:
    """Start a run and return once it printed its first log line (the model and data are set up), or, with `until`,
    the first line that starts with it (e.g. 'epoch 0': the first epoch is done)."""
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    assert first.startswith(('training', 'resuming')), first + proc.stderr.read()
    line = first
    while until and not line.startswith(until):
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
    return proc


def _stop(proc: subprocess.Popen, sig: int):
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, err


LONGER = ('--epochs', '8')  # enough epochs left after the first that a signal always arrives mid-run


def test_a_signal_stops_with_a_checkpoint_and_the_resumed_run_ends_with_the_same_bytes(tmp_path, one_thread):
    reference = tmp_path / 'reference'
    assert main(['train', *ARGS, *LONGER, '--output', str(reference)]) == 0  # in this process: one start-up less

    run = tmp_path / 'run'
    code, err = _stop(_start(_command(run, *LONGER), until='epoch 0'), signal.SIGINT)  # stopped after epoch 0
    state = load_checkpoint(run / LAST)
    assert code == 130 and state['updates'] >= 1 and not (run / 'model.safetensors').exists()
    assert err.strip().splitlines() == [
        f'editvit train: stopped by SIGINT at epoch {state["epoch"]}, update {state["updates"]}; checkpoint saved. '
        f'Resume with: editvit train --resume --output {run}']
    code, err = _stop(_start(_command(run, *LONGER, '--resume')), signal.SIGTERM)  # stopped again, resumed
    later = load_checkpoint(run / LAST)  # a signal before the first update of the resumed run stops it at once
    assert code == 143 and later['updates'] >= state['updates'], err
    assert err.strip() == (f'editvit train: stopped by SIGTERM at epoch {later["epoch"]}, update {later["updates"]}; '
                           f'checkpoint saved. Resume with: editvit train --resume --output {run}')
    assert 'stopped by SIGTERM' in (run / 'log.txt').read_text()
    assert main(['train', '--resume', *LONGER, '--output', str(run)]) == 0
    assert (run / 'model.safetensors').read_bytes() == (reference / 'model.safetensors').read_bytes()
    assert len((run / 'summary.csv').read_text().splitlines()) == 1 + 8


def test_a_second_run_into_a_running_folder_fails_at_once_naming_the_first(tmp_path, capsys):
    run = tmp_path / 'run'
    first = _start(_command(run, '--epochs', '1000'))
    try:
        config = (run / 'config.yaml').read_text()
        assert main(['train', *ARGS, '--output', str(run), '--seed', '1', '--overwrite']) == 2  # this process
        assert capsys.readouterr().err.strip() == (f"editvit train: error: '{run}' is in use by another run (process "
                                                   f"{first.pid}); wait for it to end, or choose another --output")
        assert (run / 'config.yaml').read_text() == config  # seed 7 still
    finally:
        code, _ = _stop(first, signal.SIGTERM)
    assert code == 143


TINY = dict(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2)


def _tiny(output: Path, **kwargs) -> TrainConfig:
    args = dict(model='edit_tiny_patch16_224', model_kwargs=dict(TINY), dataset='synthetic', num_classes=4,
                synthetic_samples=64, output=str(output), epochs=1, batch_size=16, lr=5e-3, warmup_epochs=0,
                mixup=0.0, cutmix=0.0, three_augment=False, color_jitter=0.0, num_workers=0, progress=False)
    return TrainConfig(**{**args, **kwargs})


def test_results_are_never_replaced_without_overwrite(tmp_path, one_thread, capsys):
    run = tmp_path / 'run'
    run.mkdir()
    (run / 'model.safetensors').write_bytes(b'final weights')
    (run / 'metrics.json').write_text('{"val_top1": 90}')
    args = ['train', '--model', 'edit_tiny_patch16_224', '--model-kwargs', *[f'{k}={v}' for k, v in TINY.items()],
            '--dataset', 'synthetic', '--num-classes', '4', '--synthetic-samples', '32', '--epochs', '1',
            '--num-workers', '0', '--batch-size', '16', '--no-progress', '--output', str(run)]
    assert main(args) == 2
    assert 'already holds a run (model.safetensors, metrics.json)' in capsys.readouterr().err
    assert (run / 'model.safetensors').read_bytes() == b'final weights'
    assert main(args + ['--overwrite']) == 0
    assert json.loads((run / 'metrics.json').read_text())['epochs'] == 1
    assert yaml.safe_load((run / 'config.yaml').read_text())['overwrite'] is True
    assert main(['train', '--resume', '--output', str(run)]) == 0  # --overwrite of the run is not a difference


def test_a_finished_run_is_left_alone_or_extended_with_more_epochs(tmp_path, one_thread, capsys):
    run = tmp_path / 'run'
    train(_tiny(run))
    files = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert main(['train', '--resume', '--output', str(run)]) == 0
    assert 'is finished (metrics.json is written); nothing was changed' in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == files

    assert main(['train', '--resume', '--output', str(run), '--epochs', '2']) == 0
    log = (run / 'log.txt').read_text()
    assert 'extending the run from 1 to 2 epochs' in log
    rows = (run / 'summary.csv').read_text().splitlines()
    metrics = json.loads((run / 'metrics.json').read_text())
    assert len(rows) == 3 and metrics['epochs'] == 2 and metrics['updates'] == 2 * 64 // 16
    # from the resume on, the lr is that of a 2-epoch run: at its end, the cosine's minimum
    reference = tmp_path / 'reference'
    train(_tiny(reference, epochs=2))
    assert rows[-1].split(',')[2] == (reference / 'summary.csv').read_text().splitlines()[-1].split(',')[2]
    assert main(['train', '--resume', '--output', str(run), '--epochs', '1']) == 2
    assert 'epochs: 2 -> 1' in capsys.readouterr().err


def test_resume_of_a_run_killed_before_its_first_checkpoint_says_to_start_again(tmp_path, capsys):
    run = tmp_path / 'run'
    run.mkdir()
    (run / 'config.yaml').write_text(f'model: edit_tiny_patch16_224\ndataset: synthetic\noutput: {run}\n')
    (run / f'.{LAST}.x1y2.tmp').write_bytes(b'\0' * 4096)  # the first checkpoint, half written
    assert main(['train', '--resume', '--output', str(run)]) == 2
    assert ('stopped before its first checkpoint. Start it again with the original editvit train command and '
            '--overwrite') in capsys.readouterr().err
    assert not list(run.glob('.*.tmp'))


def test_a_broken_config_yaml_on_resume_is_one_line(tmp_path, capsys):
    (tmp_path / 'config.yaml').write_text('model: [unclosed\n')
    assert main(['train', '--resume', '--output', str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"editvit train: error: '{tmp_path / 'config.yaml'}' is not valid YAML")
    assert 'Traceback' not in err


def test_an_output_that_is_a_file_fails_before_data_and_model(tmp_path, capsys):
    (tmp_path / 'out').write_text('x')
    assert main(['train', '--model', 'edit_tiny_patch16_224', '--dataset', 'imagefolder', '--data-dir',
                 str(tmp_path / 'no-data'), '--output', str(tmp_path / 'out'), '--num-workers', '0']) == 2
    assert capsys.readouterr().err.strip() == (f"editvit train: error: output '{tmp_path / 'out'}' is a file, not a "
                                               f"folder; choose another --output")


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs (needs root; skipped otherwise)."""
    disk = tmp_path / 'disk'
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip('mounting a small tmpfs needs root')
    yield disk
    subprocess.run(['umount', str(disk)], check=True)


def test_a_full_disk_during_a_checkpoint_names_the_file(small_disk, one_thread, capsys):
    run = small_disk / 'run'  # a 1.6M-parameter model: its checkpoint (weights and Adam's two moments) is ~19 MB
    assert main(['train', '--model', 'edit_tiny_patch16_224', '--model-kwargs', 'img_size=16', 'patch_size=4',
                 'embed_dim=128', 'depth=8', 'num_heads=2', '--dataset', 'synthetic', '--num-classes', '4',
                 '--synthetic-samples', '16', '--batch-size', '16', '--epochs', '1', '--num-workers', '0',
                 '--no-progress', '--output', str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"editvit train: error: no space left on the device of '{run / LAST}': free some space or choose "
                   f"another folder")
    assert not list(run.glob('.*.tmp')) and not (run / LAST).exists()


def test_a_signal_while_the_run_is_set_up_leaves_a_checkpoint_to_resume_from(tmp_path, one_thread):
    from safetensors.torch import load_file

    from editvit.train import distributed as D
    from editvit.train.loop import run_task
    from editvit.train.stop import RunInterrupted
    from editvit.train.trainer import ClassificationTask

    class SignalledWhileLoading(ClassificationTask):
        def create_loader(self, model, env):
            os.kill(os.getpid(), signal.SIGTERM)  # as `kill` would, while the data is being set up
            return super().create_loader(model, env)

    with pytest.raises(RunInterrupted) as stop:
        run_task(SignalledWhileLoading(_tiny(tmp_path / 'run', epochs=2)), D.DistEnv())
    assert stop.value.signum == signal.SIGTERM and str(stop.value).startswith('stopped by SIGTERM at epoch 0, update 0')
    assert load_checkpoint(tmp_path / 'run' / LAST)['updates'] == 0
    train(_tiny(tmp_path / 'run', epochs=2, resume=True))
    train(_tiny(tmp_path / 'reference', epochs=2))
    got = load_file(tmp_path / 'run' / 'model.safetensors')
    expected = load_file(tmp_path / 'reference' / 'model.safetensors')
    assert all(torch.equal(got[k], expected[k]) for k in expected)
