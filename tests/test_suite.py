"""The suite of small-scale reproductions: variants at one size, subsets, result rows, aggregation over seeds, and
the scripts at a tiny budget on the synthetic set."""
import gzip
import importlib.util
import json
import math
import shutil
from pathlib import Path

import pytest
import timm
import torch

from editvit.experiments import (VARIANTS, Budget, aggregate, append_row, compare, describe_machine, format_table,
                                 make_subset, read_rows, run_experiment, variant_model, write_rows)
from editvit.experiments.variants import psvit_stages

ROOT = Path(__file__).resolve().parents[1]
TINY = Budget(embed_dim=32, depth=3, num_heads=2, patch_size=8, epochs=1, warmup_epochs=0.2, batch_size=16,
              analysis_images=10)


def _row(model, seed, top1, top5=90.0, dataset='cifar10', budget='b', sink=None):
    return dict(model=model, dataset=dataset, budget=budget, seed=seed, top1=top1, top5=top5, params=1000, macs=10 ** 6,
                images_per_sec=100.0, sink=sink)


def test_aggregate_mean_and_sample_std_over_seeds():
    rows = [_row('edit', s, t, sink={'mean_max_token_ratio': r}) for s, t, r in [(0, 70., 1.0), (1, 72., 2.0),
                                                                                     (2, 74., 3.0)]]
    rows += [_row('deit3', s, t) for s, t in [(0, 68.), (1, 69.), (2, 70.)]]
    entries = {e['model']: e for e in aggregate(rows)}
    assert entries['edit']['n'] == 3 and entries['edit']['seeds'] == [0, 1, 2]
    assert entries['edit']['top1_mean'] == pytest.approx(72.0)
    assert entries['edit']['top1_std'] == pytest.approx(2.0)  # sample std (n - 1)
    assert entries['deit3']['top1_std'] == pytest.approx(1.0)
    assert entries['edit']['mean_max_token_ratio'] == pytest.approx(2.0)
    assert entries['deit3']['mean_max_token_ratio'] is None  # no sink metrics: not a zero
    c = compare(list(entries.values()), 'edit', 'deit3', 'cifar10', 'b')
    assert c['diff'] == pytest.approx(3.0)
    assert c['se'] == pytest.approx(math.sqrt(4 / 3 + 1 / 3))
    assert c['beyond_2se'] is True  # 3 > 2 x 1.29
    assert compare(list(entries.values()), 'edit', 'cait', 'cifar10', 'b') is None


def test_compare_needs_two_seeds_and_groups_by_dataset():
    rows = [_row('edit', 0, 50.), _row('deit3', 0, 40.), _row('edit', 0, 80., dataset='fashion-mnist')]
    entries = aggregate(rows)
    assert len(entries) == 3
    assert compare(entries, 'edit', 'deit3', 'cifar10', 'b') is None  # one seed: no spread to compare against
    table = format_table(entries)
    lines = table.strip().splitlines()
    assert lines[0].startswith('| dataset | budget | model |') and len(lines) == 2 + 3
    assert '| cifar10 | b | edit | 1 | 50.00 |' in table


def test_rows_round_trip_as_json_lines(tmp_path):
    path = tmp_path / 'r' / 'rows.jsonl'
    assert read_rows(path) == []
    append_row(path, {'model': 'edit', 'top1': 51.5})
    append_row(path, {'model': 'deit3', 'top1': 49.0, 'sink': None})
    assert read_rows(path) == [{'model': 'edit', 'top1': 51.5}, {'model': 'deit3', 'top1': 49.0, 'sink': None}]
    assert len(path.read_text().splitlines()) == 2
    with open(path, 'a') as f:
        f.write('{not json\n')
    with pytest.raises(ValueError, match='line 3'):
        read_rows(path)


def test_psvit_stages_follow_the_patch_grid():
    assert psvit_stages(6, 8) == ((2, 2, 2), (64, 36, 16))
    assert psvit_stages(4, 7) == ((2, 1, 1), (49, 25, 16))
    with pytest.raises(ValueError, match='depth >= 3'):
        psvit_stages(2, 8)


def test_every_variant_builds_at_the_same_size():
    models = {}
    for v in VARIANTS:
        name, kwargs = variant_model(v, TINY, 32)
        models[v] = timm.create_model(name, num_classes=10, **kwargs)
        assert models[v](torch.randn(2, 3, 32, 32)).shape == (2, 10)
        assert models[v].embed_dim == 32
        json.dumps(kwargs)  # the kwargs go into config.yaml and result rows
    assert models['deit3_gap'].cls_token is None and models['deit3_gap'].global_pool == 'avg'
    assert models['deit3_reg4'].num_reg_tokens == 4
    assert len(models['cait'].blocks) == 1 and len(models['cait'].blocks_token_only) == 2  # 3 layers, last 2 CA
    assert len(models['deit3'].blocks) == len(models['edit'].blocks) == 3
    with pytest.raises(ValueError, match='unknown variant'):
        variant_model('vit', TINY, 32)


def test_subset_is_balanced_written_once_and_checked(tmp_path):
    subset = make_subset('synthetic', None, tmp_path / 's', train_per_class=3, test_per_class=2,
                         synthetic_samples=80)
    assert subset.image_size == 32 and len(subset.classes) == 10
    assert sorted(len(list(d.iterdir())) for d in (tmp_path / 's' / 'train').iterdir()) == [3] * 10
    assert sorted(len(list(d.iterdir())) for d in (tmp_path / 's' / 'test').iterdir()) == [2] * 10
    assert len(subset.test_images(1)) == 10
    again = make_subset('synthetic', None, tmp_path / 's', 3, 2, synthetic_samples=80)
    assert again == subset
    with pytest.raises(ValueError, match='different subset'):
        make_subset('synthetic', None, tmp_path / 's', 4, 2, synthetic_samples=80)
    with pytest.raises(ValueError, match='fewer than'):
        make_subset('synthetic', None, tmp_path / 'big', 50, 2, synthetic_samples=80)


def test_machine_description_names_cpu_and_vector_extensions():
    m = describe_machine()
    assert set(m) >= {'cpu', 'cpu_flags', 'cores', 'torch_threads', 'load_1min', 'gpu', 'torch'}
    assert set(m['cpu_flags']) <= {'avx2', 'avx512f', 'avx512_bf16', 'amx_bf16'}


def _script(name):
    """A benchmarks/ script as a module, to call its main(argv) in this process."""
    spec = importlib.util.spec_from_file_location(name, ROOT / 'benchmarks' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_script(name, *args, capsys):
    assert _script(name).main(list(args)) == 0
    return capsys.readouterr().out


TINY_ARGS = ['--embed-dim', '32', '--depth', '3', '--num-heads', '2', '--patch-size', '8', '--epochs', '1',
             '--batch-size', '16', '--analysis-images', '10', '--train-per-class', '3', '--test-per-class', '2']


def test_suite_script_appends_one_row_per_run_and_skips_finished_runs(tmp_path, capsys):
    results = tmp_path / 'suite.jsonl'
    args = ['--datasets', 'synthetic', '--models', 'edit', 'psvit', '--seeds', '0', '--results', str(results),
            '--work', str(tmp_path / 'work'), *TINY_ARGS]
    _run_script('suite', *args, capsys=capsys)
    rows = read_rows(results)
    assert [(r['model'], r['seed'], r['dataset']) for r in rows] == [('edit', 0, 'synthetic'), ('psvit', 0,
                                                                                                 'synthetic')]
    edit, psvit = rows
    for key in ('top1', 'top5', 'params', 'macs', 'train_seconds', 'images_per_sec', 'epochs', 'machine'):
        assert edit[key] is not None, key
    assert edit['budget'] == 'd32-l3-h2-p8-e1' and edit['train_images'] == 30 and edit['test_images'] == 20
    assert 0 <= edit['top1'] <= 100 and edit['epochs'] == 1
    assert edit['sink']['cls_query_entropy_first'] > 0  # EDIT's decoder maps are measured
    assert psvit['sink_note'] is None and psvit['sink']['mean_sink_ratio'] > 0  # PSViT's pooled layers are read
    out = _run_script('suite', *args, capsys=capsys)
    assert out.count('skip') == 2 and len(read_rows(results)) == 2
    # a row written before the analysis could read its model: --remeasure-sink measures it from the saved weights
    write_rows(results, [edit, dict(psvit, sink=None, sink_note='the analysis cannot read the attention of psvit')])
    _run_script('suite', *args, '--remeasure-sink', capsys=capsys)
    new_edit, new_psvit = read_rows(results)
    for old, new in ((edit, new_edit), (psvit, new_psvit)):
        assert new['sink_measured'] and new['sink_note'] is None
        assert new['sink'] == pytest.approx(old['sink'], nan_ok=True)  # the same weights and images
        assert {k: v for k, v in new.items() if k not in ('sink', 'sink_measured')} == \
            {k: v for k, v in old.items() if k != 'sink'}  # training numbers kept
    shutil.rmtree(tmp_path / 'work' / 'synthetic' / 'd32-l3-h2-p8-e1-n3' / 'psvit-s0')
    with pytest.raises(FileNotFoundError, match='psvit-s0/model.safetensors.*is missing'):
        _run_script('suite', *args, '--remeasure-sink', capsys=capsys)
    plot = tmp_path / 'top1.png'
    table = _run_script('plot_suite', '--results', str(results), '--plot', str(plot), capsys=capsys)
    assert '| synthetic | d32-l3-h2-p8-e1 | edit | 1 |' in table
    assert plot.stat().st_size > 1000


def _write_idx(path: Path, array) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b''.join(int(s).to_bytes(4, 'big') for s in array.shape)
    with gzip.open(path, 'wb') as f:
        f.write(header + array.astype('uint8').tobytes())


def test_transfer_fine_tunes_cifar_weights_on_fashion_mnist_at_28px(tmp_path, capsys):
    import numpy as np
    fm = tmp_path / 'fm'
    fm.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (('train', 40), ('t10k', 20)):
        _write_idx(fm / f'{prefix}-images-idx3-ubyte.gz', rng.integers(0, 255, (n, 28, 28)))
        _write_idx(fm / f'{prefix}-labels-idx1-ubyte.gz', np.arange(n) % 10)
    work = tmp_path / 'work'
    source = make_subset('synthetic', None, work / 'data' / 'src', 3, 2, synthetic_samples=80)
    run_experiment('edit', source, 0, TINY, work / 'cifar10' / f'{TINY.tag()}-n3' / 'edit-s0')
    results = tmp_path / 'transfer.jsonl'
    args = ['--models', 'edit', '--seeds', '0', '--results', str(results), '--work', str(work),
            '--data-dir-fashion-mnist', str(fm), '--source-train-per-class', '3', *TINY_ARGS]
    _run_script('transfer', *args, capsys=capsys)
    (row,) = read_rows(results)
    assert row['dataset'] == 'fashion-mnist' and row['model_kwargs']['img_size'] == 28
    assert row['finetune'].endswith('edit-s0/model.safetensors')
    with pytest.raises(FileNotFoundError, match='no CIFAR-10 weights for deit3'):
        _script('transfer').main([*args, '--models', 'deit3'])


def test_budgets_sort_by_their_numbers():
    from editvit.experiments.aggregate import budget_order
    tags = ['d48-l4-h2-p4-e20', 'd48-l4-h2-p4-e6', 'd48-l4-h2-p4-e2', 'd128-l4-h2-p4-e2']
    assert sorted(tags, key=budget_order) == ['d48-l4-h2-p4-e2', 'd48-l4-h2-p4-e6', 'd48-l4-h2-p4-e20',
                                              'd128-l4-h2-p4-e2']
