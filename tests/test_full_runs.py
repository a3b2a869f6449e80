"""The full-scale comparison on a tiny synthetic stand-in: a run interrupted after its first epoch and continued
gives the row of an uninterrupted run; a run with a row is skipped; the recipe is part of the key."""
import importlib.util
import json
from pathlib import Path

import pytest

import editvit.train.loop as loop
from editvit.experiments import VARIANTS, read_rows
from editvit.experiments.full import FullRun, run_full, run_state

ROOT = Path(__file__).resolve().parents[1]
TINY = {'model_kwargs': {'img_size': 32, 'patch_size': 8, 'embed_dim': 16, 'depth': 2, 'num_heads': 2},
        'epochs': 2, 'batch_size': 16, 'warmup_epochs': 0.5}
ARGS = ['--datasets', 'synthetic', '--models', 'edit', '--seeds', '0', '--synthetic-samples', '64',
        '--analysis-images', '10', '--set', "model_kwargs={img_size: 32, patch_size: 8, embed_dim: 16, depth: 2, "
        "num_heads: 2}", 'epochs=2', 'batch_size=16', 'warmup_epochs=0.5']


def _script():
    spec = importlib.util.spec_from_file_location('full_script', ROOT / 'benchmarks' / 'full.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_interrupted_run_is_continued_to_the_same_row(tmp_path, monkeypatch):
    run = FullRun('edit', 'synthetic', 0, overrides=TINY)
    whole = run_full(run, tmp_path / 'whole', analysis_images=10, synthetic_samples=64, log=lambda s: None)

    real, calls = loop.train_one_epoch, []

    def stop_in_second_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, 'train_one_epoch', stop_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        run_full(run, tmp_path / 'cut', analysis_images=10, synthetic_samples=64, log=lambda s: None)
    assert run_state(tmp_path / 'cut') == 'interrupted'
    monkeypatch.setattr(loop, 'train_one_epoch', real)
    continued = run_full(run, tmp_path / 'cut', analysis_images=10, synthetic_samples=64, log=lambda s: None)

    assert run_state(tmp_path / 'cut') == 'finished'
    assert 'resuming' in (tmp_path / 'cut' / 'log.txt').read_text()
    assert continued['sittings'] == 2 and whole['sittings'] == 1
    cpu = continued['machine']['cpu']
    assert continued['sitting_cpus'] == [cpu] == whole['sitting_cpus']  # one machine, named once for two sittings
    assert (tmp_path / 'cut' / 'sittings.txt').read_text().count(f' cpu {cpu}\n') == 2
    for key in ('top1', 'top5', 'best_top1', 'params', 'macs', 'budget', 'epochs', 'train_images', 'test_images'):
        assert continued[key] == whole[key], key
    assert continued['sink'] == pytest.approx(whole['sink'])  # exact resume: the same weights
    assert continued['scale'] == 'full' and continued['recipe'] == 'cifar10_cpu' and continued['threads'] >= 1
    assert set(continued['load_1min']) == {'start', 'end'} and continued['machine']['cores'] >= 1


def test_finished_rows_are_skipped_and_the_recipe_is_in_the_key(tmp_path, capsys):
    script = _script()
    common = ['--results', str(tmp_path / 'full.jsonl'), '--work', str(tmp_path / 'runs')]
    assert script.main(ARGS + common) == 0
    rows = read_rows(tmp_path / 'full.jsonl')
    assert len(rows) == 1 and rows[0]['budget'].startswith('cifar10_cpu-') and rows[0]['budget'].endswith('-e2')
    capsys.readouterr()
    assert script.main(ARGS + common) == 0
    assert 'skip edit synthetic' in capsys.readouterr().out
    assert len(read_rows(tmp_path / 'full.jsonl')) == 1
    # another recipe value is another key: an old row never stands for it
    other = FullRun('edit', 'synthetic', 0, overrides=dict(TINY, lr=2e-3))
    assert other.tag() != rows[0]['budget'] and other.tag().startswith('cifar10_cpu-')
    assert FullRun('edit', 'synthetic', 0, overrides=dict(TINY, lr='2e-3')).tag() == other.tag()  # as --set lr=2e-3
    # a finished run folder without its row (killed during the analysis) is measured, not trained again
    (tmp_path / 'full.jsonl').unlink()
    assert script.main(ARGS + common) == 0
    assert 'starting' not in capsys.readouterr().out
    again = read_rows(tmp_path / 'full.jsonl')
    assert again[0]['top1'] == rows[0]['top1'] and again[0]['sittings'] == 1
    table = script.table(script.parse_args(ARGS + common + ['--seeds', '0', '1']))
    assert '| synthetic | ' + rows[0]['budget'] + ' | edit | 1 |' in table and 'seed 1 | pending |' in table
    # accuracy against time: one line per run folder with its top-1 after each epoch, and the picture
    capsys.readouterr()
    assert script.main(ARGS + common + ['--seeds', '0', '1', '--curves', str(tmp_path / 'curves.png')]) == 0
    lines = capsys.readouterr().out.splitlines()
    summary = (tmp_path / 'runs' / 'synthetic' / rows[0]['budget'] / 'edit-s0' / 'summary.csv').read_text()
    last_top1 = float(summary.splitlines()[-1].split(',')[4])
    assert len(lines) == 1 and lines[0].startswith('- synthetic edit seed 0: top-1 after epochs 1-2: ')
    assert f'/ {last_top1:.2f} (' in lines[0] and (tmp_path / 'curves.png').stat().st_size > 10_000
    # the pictures of the finished runs, one folder per data set, recipe and seed
    assert script.main(ARGS + common + ['--seeds', '0', '1', '--figures', str(tmp_path / 'fig')]) == 0
    folder = tmp_path / 'fig' / f"synthetic-{rows[0]['budget']}-s0"
    metrics = json.loads((folder / 'metrics.json').read_text())
    assert metrics['model'] == 'edit' and metrics['num_images'] == 10 and 'compare' not in metrics
    assert (folder / 'attention_sink.png').is_file() and len(list((folder / 'maps').glob('*.png'))) == 4


@pytest.mark.slow  # torchrun starts two processes
def test_a_run_of_two_processes_is_trained_by_both_and_written_once(tmp_path, capsys):
    script = _script()
    common = ['--results', str(tmp_path / 'full.jsonl'), '--work', str(tmp_path / 'runs'), '--processes', '2']
    assert script.main(ARGS + common) == 0
    rows = read_rows(tmp_path / 'full.jsonl')
    assert len(rows) == 1  # only the first process measures and writes
    row = rows[0]
    assert row['processes'] == 2 and row['threads'] == 1 and row['budget'].endswith('-e2-2proc')
    assert row['budget'] == FullRun('edit', 'synthetic', 0, overrides=TINY, processes=2).tag()
    assert row['budget'] != FullRun('edit', 'synthetic', 0, overrides=TINY).tag()  # another key than one process
    folder = tmp_path / 'runs' / 'synthetic' / row['budget'] / 'edit-s0'
    assert '2 process(es) on cpu' in (folder / 'log.txt').read_text()
    assert ' processes 2 threads 1 ' in (folder / 'sittings.txt').read_text()
    assert 0 <= row['top1'] <= 100 and row['sink'] is not None
    # a run planned for two processes is not trained by one
    with pytest.raises(ValueError, match='planned for 2 process'):
        run_full(FullRun('edit', 'synthetic', 0, overrides=TINY, processes=2), tmp_path / 'one', synthetic_samples=64)


@pytest.mark.parametrize('variant', VARIANTS)
def test_every_variant_of_a_full_run_gets_the_recipes_stem(variant, tmp_path):
    import torch
    from editvit.experiments.full import full_config
    from editvit.models import create_model
    cfg = full_config(FullRun(variant, 'fashion-mnist', 0), tmp_path)
    assert cfg.model_kwargs['stem'] == 'conv' and cfg.model_kwargs['img_size'] == 28
    assert cfg.crop == 'none' and (cfg.batch_size, cfg.global_batch_size, cfg.lr, cfg.epochs) == (16, 32, 1e-3, 22)
    model = create_model(cfg.model, 10, cfg.model_kwargs, layer_scale_init=cfg.layer_scale_init).eval()
    assert isinstance(model.patch_embed.proj, torch.nn.Sequential) and model(torch.randn(1, 3, 28, 28)).shape == (1, 10)
