"""What several test files build: a tiny EDIT, uniform attention in a model, an attention-sink summary, a run killed
with SIGKILL once its checkpoint holds enough updates."""
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import List

import timm
import torch

import editvit  # noqa: F401  registers the EDIT models


def tiny_edit(**kwargs) -> torch.nn.Module:
    """A CIFAR-sized EDIT small enough for fast tests."""
    args = dict(img_size=32, patch_size=8, embed_dim=48, depth=3, num_heads=3, num_classes=10)
    return timm.create_model('edit_tiny_patch16_224', **{**args, **kwargs})


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


def kill_after_checkpoint(cmd: List[str], ckpt: Path, min_updates: int) -> int:
    """Start the command (a training or search run) in a child process with one torch thread and a fixed hash seed,
    SIGKILL it as soon as its checkpoint ckpt has min_updates updates; the updates it was killed after."""
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONHASHSEED='0')  # same threads in every run: same float sums
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while proc.poll() is None:
            if ckpt.exists():
                try:
                    updates = int(torch.load(ckpt, weights_only=True)['updates'])
                except Exception:  # the rename may land while we read; read again
                    updates = -1
                if updates >= min_updates:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    return updates
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            proc.kill()
    raise AssertionError(f'the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}')
