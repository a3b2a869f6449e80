"""`editvit demo`: where its data comes from, and the report folder it writes (synthetic images, tiny models)."""
import json
import urllib.error

import pytest

from editvit.cli import main
from editvit.experiments import Budget, MissingDataError, locate_data, read_rows, run_demo
from editvit.experiments import locate_cifar10

TINY = Budget(embed_dim=32, depth=3, num_heads=2, patch_size=8, epochs=2, warmup_epochs=0.2, batch_size=16,
              analysis_images=10)


def test_demo_writes_table_plots_analysis_and_rows(tmp_path):
    report = run_demo(tmp_path / 'demo', dataset='synthetic', budget=TINY, train_per_class=4, test_per_class=2,
                      maps=2, log=lambda line: None)
    out = tmp_path / 'demo'
    rows = read_rows(out / 'results.jsonl')
    assert [r['model'] for r in rows] == ['edit', 'deit3']
    assert rows[0]['params'] > 0 and rows[0]['budget'] == rows[1]['budget'] == 'd32-l3-h2-p8-e2'
    assert rows[0]['model_kwargs']['depth'] == rows[1]['model_kwargs']['depth'] == 3  # same depth and width
    assert rows[0]['model_kwargs']['embed_dim'] == rows[1]['model_kwargs']['embed_dim'] == 32
    assert rows[1]['sink']['mean_sink_ratio'] > 0 and rows[0]['sink'].get('mean_sink_ratio') is None  # EDIT: no
    # [CLS] key in its encoder
    metrics = json.loads((out / 'analysis' / 'metrics.json').read_text())
    assert metrics['model'] == 'edit' and metrics['compare']['model'] == 'deit3' and metrics['num_images'] == 10
    for name in ('training.png', 'analysis/attention_sink.png', 'analysis/attention_blocks.png',
                 'analysis/metrics.csv'):
        assert (out / name).stat().st_size > 500, name
    assert len(list((out / 'analysis' / 'maps').glob('*.png'))) == 2
    readme = (out / 'README.md').read_text()
    assert '| synthetic | d32-l3-h2-p8-e2 | edit | 1 |' in readme and report.summary in readme
    assert f"top-1 {rows[0]['top1']:.2f}%" in report.summary and 'EDIT - DeiT3' in report.summary
    assert (out / 'runs' / 'edit' / 'model.safetensors').is_file()
    run_demo(out, dataset='synthetic', budget=TINY, train_per_class=4, test_per_class=2, maps=1,
             log=lambda line: None)
    assert len(read_rows(out / 'results.jsonl')) == 2  # a second demo replaces the first's report
    assert len(list((out / 'analysis' / 'maps').glob('*.png'))) == 1


def test_data_from_argument_then_environment(tmp_path, monkeypatch):
    (tmp_path / 'cifar10').mkdir()
    assert locate_data(tmp_path / 'cifar10') == tmp_path / 'cifar10'
    monkeypatch.setenv('EDITVIT_DATA', str(tmp_path))
    assert locate_data() == tmp_path / 'cifar10'
    with pytest.raises(MissingDataError, match='does not exist') as e:
        locate_data(tmp_path / 'nowhere')
    assert '--data-dir' in str(e.value) and 'EDITVIT_DATA' in str(e.value)


def test_no_data_and_no_internet_names_both_options(tmp_path, monkeypatch):
    monkeypatch.delenv('EDITVIT_DATA', raising=False)

    def offline(root):
        raise urllib.error.URLError('[Errno -3] Temporary failure in name resolution')
    monkeypatch.setattr(locate_cifar10, '_download_cifar10', offline)
    with pytest.raises(MissingDataError) as e:
        locate_data(download_root=tmp_path / 'cache')
    message = str(e.value)
    assert 'EDITVIT_DATA is not set' in message and 'download' in message and 'name resolution' in message
    assert '--data-dir DIR' in message and 'make demo DATA=DIR' in message and 'internet' in message


def test_cli_reports_missing_data_without_a_traceback(tmp_path, capsys):
    assert main(['demo', '--data-dir', str(tmp_path / 'nowhere'), '--output', str(tmp_path / 'out')]) == 2
    err = capsys.readouterr().err
    assert err.startswith('editvit demo: error: data directory') and 'EDITVIT_DATA' in err
    assert 'Traceback' not in err


def test_subset_from_torchvision_cifar_keeps_pixels_and_labels(tmp_path, monkeypatch):
    """What the demo trains on after a torchvision download: cifar-10-batches-py/ pickles -> PNG class folders."""
    import os
    import pickle

    import numpy as np
    from PIL import Image
    from torchvision.datasets import CIFAR10, cifar

    from editvit.experiments import make_subset
    monkeypatch.setattr(CIFAR10, '_check_integrity', lambda self: True)  # the files below have no official md5
    monkeypatch.setattr(cifar, 'check_integrity', lambda path, md5=None: os.path.isfile(path))
    batches = tmp_path / 'cifar-10-batches-py'
    batches.mkdir()
    rng = np.random.default_rng(0)
    data = {}
    for name in [f'data_batch_{i}' for i in range(1, 6)] + ['test_batch']:
        data[name] = rng.integers(0, 255, (10, 3072), dtype=np.uint8)
        with open(batches / name, 'wb') as f:
            pickle.dump({'data': data[name], 'labels': list(range(10))}, f)
    with open(batches / 'batches.meta', 'wb') as f:
        pickle.dump({'label_names': [f'c{i}' for i in range(10)]}, f)
    subset = make_subset('cifar10', locate_data(tmp_path), tmp_path / 'subset', train_per_class=2, test_per_class=1)
    assert subset.classes[3] == 'c3' and subset.image_size == 32
    (test_image,) = sorted((tmp_path / 'subset' / 'test' / '03').iterdir())
    expected = data['test_batch'][3].reshape(3, 32, 32).transpose(1, 2, 0)  # test image 3 has label 3
    assert test_image.name == '000003.png'
    assert np.array_equal(np.asarray(Image.open(test_image)), expected)  # lossless
    assert len(list((tmp_path / 'subset' / 'train' / '07').iterdir())) == 2


def test_demo_trains_and_tests_on_the_whole_data_set_without_copying(tmp_path):
    report = run_demo(tmp_path / 'demo', dataset='synthetic', budget=TINY, train_per_class=None, maps=1,
                      log=lambda line: None)
    rows = read_rows(tmp_path / 'demo' / 'results.jsonl')
    assert [r['model'] for r in rows] == ['edit', 'deit3']
    assert rows[0]['train_images'] == 256 and rows[0]['test_images'] == 64  # the synthetic set's whole splits
    assert not (tmp_path / 'demo' / 'data').exists()  # nothing written as image files
    assert '256 training images, 64 test images' in report.summary and 'full-scale' in report.summary
    assert len(list((tmp_path / 'demo' / 'analysis' / 'maps').glob('*.png'))) == 1


@pytest.mark.parametrize('cpus, load, omp, threads, expected', [
    (2, 0.0, None, None, (2, 1)),   # an idle 2-core machine: side by side, a thread each
    (2, 1.0, None, None, (2, 1)),   # the load of the install just before: still side by side
    (8, 0.0, None, None, (2, 4)),
    (1, 0.0, None, None, (1, 1)),
    (2, 0.0, '1', None, (1, 1)),    # pinned to one thread in all: one model after the other
    (2, 0.0, None, 1, (1, 1)),
    (8, 0.0, None, 6, (2, 3)),
])
def test_the_two_models_train_side_by_side_unless_pinned_to_one_thread(monkeypatch, cpus, load, omp, threads,
                                                                       expected):
    from editvit import threads as threads_module
    from editvit.experiments.demo import demo_processes
    monkeypatch.setattr(threads_module.os, 'cpu_count', lambda: cpus)
    monkeypatch.setattr(threads_module.os, 'getloadavg', lambda: (load, 0.0, 0.0))
    if omp is None:
        monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    else:
        monkeypatch.setenv('OMP_NUM_THREADS', omp)
    assert demo_processes(threads) == expected
