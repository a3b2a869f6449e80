"""Fixtures: one torch thread and a fixed seed for every test, a folder of small images.

Functions that several test files share (a tiny EDIT, ...) are in tests/common.py, imported as `from .common import`.
"""
import numpy as np
import pytest
import torch
from PIL import Image

import editvit  # noqa: F401  registers the EDIT models


@pytest.fixture(autouse=True, scope='session')
def one_thread():
    """One torch thread for the whole run: the models are tiny, and on a shared 2-core CPU intra-op threads waiting
    on each other made some tests 20x slower. Child processes get OMP_NUM_THREADS=1 from the tests that start them."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope='module')
def image_dir(tmp_path_factory):
    """Two small PNGs (random noise) and a text file the image loader must skip."""
    folder = tmp_path_factory.mktemp('images')
    rng = np.random.default_rng(0)
    for name in ('b_noise', 'a_gradient'):
        pixels = rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f'{name}.png')
    (folder / 'notes.txt').write_text('not an image, skipped when the folder is read')
    return folder
