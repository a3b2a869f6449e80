"""Pretrained weights: cached files used without a network, a clear error at once when offline, no pretrained
name on random weights."""
import time

import pytest
import timm
import torch

from editvit import create_model, save_model
from editvit.errors import ConfigError
from editvit.models import hub

TAGGED = 'deit3_small_patch16_224.fb_in1k'
SMALL = dict(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, num_classes=10)


def test_a_pretrained_name_without_weights_is_refused():
    with pytest.raises(ConfigError, match=r"names pretrained weights.*--pretrained.*--checkpoint.*"
                                          r"\(deit3_small_patch16_224\)"):
        create_model(TAGGED, model_kwargs=SMALL)


def test_offline_and_not_cached_fails_at_once_naming_local_options(monkeypatch):
    monkeypatch.setattr(hub, 'cached_weights', lambda name: None)
    monkeypatch.setattr(hub, 'reachable', lambda host, timeout=0: False)
    start = time.perf_counter()
    with pytest.raises(ConfigError, match='huggingface.co is not reachable.*--checkpoint FILE'):
        create_model(TAGGED, model_kwargs=SMALL, pretrained=True)
    assert time.perf_counter() - start < 5


def test_cached_hub_file_is_loaded_without_the_network(tmp_path, monkeypatch):
    torch.manual_seed(1)
    source = timm.create_model('deit3_small_patch16_224', **SMALL)
    path = save_model(source, tmp_path / 'model.safetensors')
    monkeypatch.setattr(hub, 'cached_weights', lambda name: str(path))
    monkeypatch.setattr(hub, 'reachable', lambda host, timeout=0: pytest.fail('no network call expected'))
    model = create_model(TAGGED, model_kwargs={k: v for k, v in SMALL.items() if k != 'num_classes'},
                         pretrained=True, num_classes=10)
    assert torch.equal(model.blocks[1].mlp.fc2.weight, source.blocks[1].mlp.fc2.weight)


def test_reachable_gives_up_within_its_timeout():
    start = time.perf_counter()
    assert hub.reachable('nonexistent.invalid', timeout=1.0) is False
    assert time.perf_counter() - start < 3
