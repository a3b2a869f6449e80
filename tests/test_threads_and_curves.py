"""Thread counts chosen from the idle cores, and the training curves every run draws."""
import sys

import pytest
from PIL import Image

from editvit import threads
from editvit.errors import ConfigError
from editvit.train.curves import plot_training


def test_threads_default_to_the_idle_cores_split_between_processes(monkeypatch):
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    monkeypatch.setattr(threads.os, 'cpu_count', lambda: 8)
    monkeypatch.setattr(threads.os, 'getloadavg', lambda: (2.6, 0.0, 0.0))
    assert threads.idle_cores() == 5
    assert threads.choose_threads() == 5
    assert threads.choose_threads(processes_per_machine=2) == 2
    assert threads.choose_threads(3, processes_per_machine=2) == 3
    monkeypatch.setattr(threads.os, 'getloadavg', lambda: (30.0, 0.0, 0.0))
    assert threads.choose_threads() == 1
    monkeypatch.setenv('OMP_NUM_THREADS', '3')  # a job pinned to 3 threads keeps them
    assert threads.choose_threads() == 3 and threads.choose_threads(2) == 2


def test_threads_below_one_are_refused():
    with pytest.raises(ConfigError, match='at least 1, got 0'):
        threads.choose_threads(0)


def _history(epochs):
    return [dict(epoch=i, train_loss=2.0 - 0.1 * i, val_loss=2.1 - 0.1 * i, val_top1=10.0 + 5 * i, lr=1e-3)
            for i in range(epochs)]


def test_training_png_is_drawn(tmp_path):
    path = plot_training(_history(3), tmp_path / 'training.png', title='edit on synthetic')
    with Image.open(path) as image:
        assert image.size == (1300, 360)


def test_training_png_is_skipped_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'matplotlib', None)
    assert plot_training(_history(2), tmp_path / 'training.png') is None
    assert not (tmp_path / 'training.png').exists()
