import pytest
import timm
import torch

import editvit  # noqa: F401  registers the EDIT models


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread; on a shared 2-core CPU, intra-op threads waiting on each other made
    some tests 20x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_edit(**kwargs) -> torch.nn.Module:
    """A CIFAR-sized EDIT small enough for fast tests."""
    args = dict(img_size=32, patch_size=8, embed_dim=48, depth=3, num_heads=3, num_classes=10)
    return timm.create_model('edit_tiny_patch16_224', **{**args, **kwargs})
