"""Options checked where they are parsed (one line naming the option and its range), strict JSON records, what
every run shows (training.png, per-update TensorBoard scalars, threads and load, the warm-up warning), and
evaluation of a run from its folder."""
import json
import math

import pytest

from editvit.cli import main
from editvit.errors import ConfigError
from editvit.segmentation import SegEvalConfig, SegTrainConfig
from editvit.threads import processes_per_machine
from editvit.train import EvalConfig, TrainConfig, from_dict, load_config
from editvit.train.curves import plot_training
from editvit.train.records import write_json

TINY = ['--model-kwargs', 'img_size=16', 'patch_size=4', 'embed_dim=32', 'depth=2', 'num_heads=2']


@pytest.mark.parametrize('cls, key, value, message', [
    (TrainConfig, 'num_workers', -1, "'num_workers' (--num-workers) must be >= 0, got -1"),
    (TrainConfig, 'val_split_per_class', -1, "'val_split_per_class' (--val-split-per-class) must be >= 0, got -1"),
    (TrainConfig, 'epochs', -2, "'epochs' (--epochs) must be >= 1, got -2"),
    (TrainConfig, 'lr', -0.1, "'lr' (--lr) must be > 0, got -0.1"),
    (TrainConfig, 'threads', 0, "'threads' (--threads) must be >= 1, got 0"),
    (TrainConfig, 'hflip', 1.5, "'hflip' (--hflip) must be >= 0 and <= 1, got 1.5"),
    (TrainConfig, 'warmup_epochs', float('nan'), "'warmup_epochs' (--warmup-epochs) must be >= 0, got nan"),
    (EvalConfig, 'batch_size', 0, "'batch_size' (--batch-size) must be >= 1, got 0"),
    (SegTrainConfig, 'eval_every', 0, "'eval_every' (--eval-every) must be >= 1, got 0"),
    (SegTrainConfig, 'cat_max_ratio', 0, "'cat_max_ratio' (--cat-max-ratio) must be > 0 and <= 1, got 0.0"),
    (SegEvalConfig, 'pictures', -3, "'pictures' (--pictures) must be >= 0, got -3"),
])
def test_options_outside_their_range_are_refused_when_parsed(cls, key, value, message):
    with pytest.raises(ConfigError) as error:
        from_dict(cls, {key: value})
    assert str(error.value) == message


def test_bad_options_on_the_command_line_are_one_line_and_exit_2(tmp_path, capsys):
    assert main(['train', '--model', 'x', '--dataset', 'synthetic', '--output', str(tmp_path), '--num-workers',
                 '-1']) == 2
    assert capsys.readouterr().err == "editvit train: error: 'num_workers' (--num-workers) must be >= 0, got -1\n"
    assert main(['eval', '--model', 'x', '--dataset', 'synthetic', '--checkpoint', 'w', '--batch-size', '0']) == 2
    assert capsys.readouterr().err == "editvit eval: error: 'batch_size' (--batch-size) must be >= 1, got 0\n"
    assert main(['segment', 'train', '--model', 'x', '--dataset', 'synthetic', '--output', str(tmp_path),
                 '--epochs', '0']) == 2
    assert capsys.readouterr().err == "editvit segment train: error: 'epochs' (--epochs) must be >= 1, got 0\n"
    assert main(['search', '--dataset', 'synthetic', '--epochs', '0', '--output', str(tmp_path / 'r.json')]) == 2
    assert "'epochs' (--epochs) must be >= 1, got 0" in capsys.readouterr().err
    (tmp_path / 'r.json').write_text('{}')  # a result file of the former interface: before any work
    assert main(['search', '--dataset', 'synthetic', '--output', str(tmp_path / 'r.json')]) == 2
    assert '--output is now a run folder' in capsys.readouterr().err


def test_records_are_strict_json(tmp_path):
    path = write_json(tmp_path / 'metrics.json', {'loss': float('nan'), 'rows': [1.0, float('inf')], 'top1': 9.5})
    strict = json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(f'{name} in JSON'))
    assert strict == {'loss': None, 'rows': [1.0, None], 'top1': 9.5}


def test_ranks_of_a_machine_split_its_cores(monkeypatch):
    monkeypatch.setenv('LOCAL_WORLD_SIZE', '4')
    assert processes_per_machine() == 4
    monkeypatch.delenv('LOCAL_WORLD_SIZE')
    assert processes_per_machine() == 1


def test_training_png_of_a_segmentation_run_evaluated_every_other_epoch(tmp_path):
    rows = [dict(epoch=0, train_loss=1.0, lr=1e-3), dict(epoch=1, train_loss=0.8, lr=5e-4, val_mIoU=40.0),
            dict(epoch=2, train_loss=0.7, lr=1e-5, val_mIoU=55.5)]
    assert plot_training(rows, tmp_path / 'training.png', 'segmenter').stat().st_size > 0
    assert plot_training(rows[:1], tmp_path / 'first.png').stat().st_size > 0  # before any evaluation


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    """A finished 2-epoch classification run with TensorBoard, its warm-up longer than the run."""
    import torch
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp('run')
    assert main(['train', '--model', 'edit_tiny_patch16_224', *TINY, '--dataset', 'synthetic', '--num-classes', '4',
                 '--synthetic-samples', '64', '--epochs', '2', '--batch-size', '16', '--num-workers', '0',
                 '--eval-crop-ratio', '0.875', '--seed', '3', '--no-progress', '--tensorboard', '--threads', '1',
                 '--output', str(out)]) == 0
    return out


def test_every_run_shows_its_curves_threads_load_and_per_update_scalars(run):
    assert (run / 'training.png').stat().st_size > 0
    rows = (run / 'summary.csv').read_text().splitlines()
    header = rows[0].split(',')
    assert header[-2:] == ['threads', 'load'] and [r.split(',')[-2] for r in rows[1:]] == ['1', '1']
    assert float(rows[1].split(',')[-1]) >= 0
    metrics = json.loads((run / 'metrics.json').read_text())
    assert metrics['threads'] == 1 and metrics['load'] >= 0
    log = (run / 'log.txt').read_text().splitlines()
    assert '1 thread(s) each, load' in log[0]
    assert log[1] == ('warning: the warm-up (5 epochs) is as long as the run (2 epochs): the learning rate only rises '
                      f'and never reaches its peak {metrics["lr"]:.3g}; lower --warmup-epochs')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(run / 'tensorboard')).Reload()
    assert [e.step for e in events.Scalars('update/train_loss')] == list(range(1, metrics['updates'] + 1))
    assert len(events.Scalars('update/lr')) == metrics['updates'] and len(events.Scalars('train_loss')) == 2


def test_eval_of_a_run_folder_reproduces_its_number(run, capsys):
    capsys.readouterr()
    assert main(['eval', '--run', str(run)]) == 0
    result = json.loads(capsys.readouterr().out)
    metrics = json.loads((run / 'metrics.json').read_text())
    assert result['top1'] == pytest.approx(metrics['val_top1'], abs=1e-3)
    assert result['loss'] == pytest.approx(metrics['val_loss'], abs=1e-5)
    cfg = load_config(None, {'run': str(run), 'batch_size': 4}, cls=EvalConfig)  # given options win
    assert cfg.eval_crop_ratio == 0.875 and cfg.seed == 3 and cfg.batch_size == 4
    assert cfg.checkpoint == str(run / 'model.safetensors') and cfg.output is None


def test_segment_eval_of_a_run_folder_reproduces_its_miou(tmp_path, one_thread, capsys):
    run = tmp_path / 'run'
    assert main(['segment', 'train', '--model', 'edit_tiny_patch16_224', '--model-kwargs', 'patch_size=8',
                 'embed_dim=32', 'depth=2', 'num_heads=2', '--crop-size', '32', '--scale-long', '128',
                 '--scale-short', '32', '--eval-stride', '16', '--dataset', 'synthetic', '--synthetic-samples', '32',
                 '--num-workers', '0', '--epochs', '1', '--lr', '0.05', '--decoder', 'linear', '--no-progress',
                 '--eval-batch-size', '4', '--output', str(run)]) == 0
    assert (run / 'training.png').stat().st_size > 0
    capsys.readouterr()
    assert main(['segment', 'eval', '--run', str(run)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result['mIoU'] == pytest.approx(json.loads((run / 'metrics.json').read_text())['val_mIoU'])
    assert math.isfinite(result['mIoU']) and result['threads'] >= 1
    cfg = load_config(None, {'run': str(run)}, cls=SegEvalConfig)
    assert (cfg.decoder, cfg.crop_size, cfg.scale_long, cfg.eval_stride, cfg.batch_size) == ('linear', 32, 128, 16, 4)


def test_without_matplotlib_the_run_says_so_once(tmp_path, one_thread, monkeypatch):
    import sys

    from editvit.train import TrainConfig, train
    monkeypatch.setitem(sys.modules, 'matplotlib', None)
    train(TrainConfig(model='edit_tiny_patch16_224', model_kwargs=dict(img_size=16, patch_size=4, embed_dim=32,
                                                                       depth=2, num_heads=2),
                      dataset='synthetic', num_classes=4, synthetic_samples=32, epochs=2, batch_size=16,
                      num_workers=0, progress=False, warmup_epochs=0, output=str(tmp_path)))
    log = (tmp_path / 'log.txt').read_text()
    assert log.count("training.png is not drawn: matplotlib is missing (pip install 'editvit[plots]')") == 1
    assert not (tmp_path / 'training.png').exists()


def test_result_rows_and_analysis_metrics_are_strict_json(tmp_path):
    import json

    from editvit.experiments.results import append_row, read_rows

    append_row(tmp_path / 'rows.jsonl', {'top1': float('nan'), 'loss': float('inf'), 'n': 3})
    line = (tmp_path / 'rows.jsonl').read_text()
    assert json.loads(line, parse_constant=lambda c: pytest.fail(f'{c} in strict JSON')) == {
        'top1': None, 'loss': None, 'n': 3}
    assert read_rows(tmp_path / 'rows.jsonl') == [{'top1': None, 'loss': None, 'n': 3}]
