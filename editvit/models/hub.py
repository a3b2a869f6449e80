"""Pretrained weights from the model hubs timm uses (Hugging Face Hub, or a URL in the model's pretrained config),
found in the local caches first, and a clear error at once when they are neither cached nor reachable.

timm's own download, offline, retries for about 50 s before it fails, and even with the file cached it first asks
the hub whether the file changed. So: a cached file is handed to timm as a local file; otherwise the hub's host is
tried with a short time-out; unreachable, the error names the ways to give local weights.
"""
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Optional
from urllib.parse import urlparse

import torch
from timm.models import get_pretrained_cfg

from ..errors import ConfigError

HUB_HOST = 'huggingface.co'
# what timm looks for in a Hugging Face repository, in its order
HUB_FILES = ('open_clip_model.safetensors', 'model.safetensors', 'open_clip_pytorch_model.bin', 'pytorch_model.bin')
REACH_TIMEOUT_S = 4.0


def has_pretrained_tag(name: str) -> bool:
    """'deit3_small_patch16_224.fb_in1k' names pretrained weights; 'deit3_small_patch16_224' does not."""
    return '.' in name


def cached_weights(name: str) -> Optional[str]:
    """The local file of `name`'s pretrained weights in the Hugging Face or torch hub cache, or None."""
    cfg = get_pretrained_cfg(name)
    if cfg is None:
        return None
    if cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache
        repo, _, revision = cfg.hf_hub_id.partition('@')
        for filename in ((cfg.hf_hub_filename,) if cfg.hf_hub_filename else HUB_FILES):
            path = try_to_load_from_cache(repo, filename, revision=revision or None)
            if isinstance(path, str):
                return path
    if cfg.url:
        path = os.path.join(torch.hub.get_dir(), 'checkpoints', os.path.basename(urlparse(cfg.url).path))
        if os.path.isfile(path):
            return path
    return None


def reachable(host: str, timeout: float = REACH_TIMEOUT_S) -> bool:
    """Whether a TCP connection to host:443 opens within timeout (name lookup included)."""
    def connect() -> bool:
        with socket.create_connection((host, 443), timeout=timeout):
            return True

    pool = ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(connect).result(timeout=timeout)
    except (OSError, FutureTimeout):
        return False
    finally:
        pool.shutdown(wait=False)


def pretrained_source(name: str) -> Optional[str]:
    """Where timm should take `name`'s pretrained weights from: a cached local file, or None to download them.

    Raises:
        ConfigError: timm has no pretrained weights for the name, or they are neither cached nor reachable.
    """
    cfg = get_pretrained_cfg(name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
        raise ConfigError(f'timm has no pretrained weights for {name!r}; name a pretrained tag (e.g. '
                          f'deit3_small_patch16_224.fb_in1k) or give local weights with --checkpoint FILE')
    if cfg.file:
        return cfg.file
    local = cached_weights(name)
    if local is not None:
        return local
    host = HUB_HOST if cfg.hf_hub_id else urlparse(cfg.url).hostname or ''
    if not reachable(host):
        raise ConfigError(
            f'cannot download the pretrained weights of {name!r}: {host} is not reachable from this machine and '
            f'they are not in the local cache. Give local weights instead: --checkpoint FILE (a timm state dict, '
            f'.safetensors or .pth), or copy the hub files into the Hugging Face cache ($HF_HOME)')
    return None
