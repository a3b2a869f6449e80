import numpy as np
import pytest
import timm
import torch
from PIL import Image

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


def zero_query_key(model: torch.nn.Module) -> None:
    """Zero the query and key projections (weights and biases) of every block that has them: each attention row
    becomes uniform (timm Attention and PSViT's own-attention layers; sharing layers have none)."""
    with torch.no_grad():
        for block in model.blocks:
            if hasattr(block.attn, 'qkv'):
                n = 2 * block.attn.qkv.weight.shape[0] // 3
                block.attn.qkv.weight[:n] = 0
                block.attn.qkv.bias[:n] = 0


def attention_summary(model: torch.nn.Module, x: torch.Tensor) -> dict:
    """The attention-sink statistics of model on images x, summarised."""
    from editvit.analysis import AttentionStatistics, extract_attention
    stats = AttentionStatistics()
    stats.update(extract_attention(model, x))
    return stats.summary()
