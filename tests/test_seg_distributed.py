"""Segmenter training under torchrun (2 CPU processes, gloo) and with bf16 autocast, through the same engine."""
import json
import os
import subprocess
import sys

import pytest
import torch

from editvit.cli import main
from editvit.segmentation import SegTrainConfig, train_segmentation
from editvit.train.checkpoint import LAST, load_checkpoint

MODEL_DATA = ['--model', 'edit_tiny_patch16_224', '--model-kwargs', 'patch_size=8', 'embed_dim=32', 'depth=2',
              'num_heads=2', '--crop-size', '32', '--scale-long', '128', '--scale-short', '32', '--dataset',
              'synthetic', '--synthetic-samples', '32', '--num-workers', '0']


@pytest.mark.slow  # torchrun starts two processes
def test_two_process_segmentation_training(tmp_path, capsys):
    out = tmp_path / 'run'
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', '-m', 'editvit',
           'segment', 'train', *MODEL_DATA, '--batch-size', '4', '--epochs', '1', '--no-progress', '--output', str(out)]
    result = subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS='1'), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    state = load_checkpoint(out / LAST)
    assert len(state['ranks']) == 2  # both ranks' RNG states are kept for an exact resume
    assert not torch.equal(state['ranks'][0]['rng']['torch'], state['ranks'][1]['rng']['torch'])
    assert state['updates'] == 32 // (4 * 2)  # 32 images, 4 per rank and step, 2 ranks
    metrics = json.loads((out / 'metrics.json').read_text())
    assert (metrics['updates'], metrics['global_batch'], metrics['epochs']) == (4, 8, 1)

    # the validation metrics, intersections and unions summed over the two ranks' shares of the 8 validation images,
    # equal a single-process evaluation of the final weights
    capsys.readouterr()
    assert main(['segment', 'eval', *MODEL_DATA, '--checkpoint', str(out / 'model.safetensors'),
                 '--batch-size', '3']) == 0
    one = json.loads(capsys.readouterr().out)
    assert one['images'] == 8
    for key in ('mIoU', 'pixel_acc', 'mAcc'):
        assert one[key] == pytest.approx(metrics[f'val_{key}'], abs=1e-6), key
    assert one['per_class_iou'] == metrics['per_class_iou']


def test_bf16_autocast_segmentation_training(tmp_path):
    cfg = SegTrainConfig(model='edit_tiny_patch16_224', model_kwargs=dict(patch_size=8, embed_dim=32, depth=2,
                                                                          num_heads=2),
                         dataset='synthetic', num_classes=3, synthetic_samples=16, synthetic_image_size=32,
                         crop_size=32, scale_long=128, scale_short=32, epochs=1, batch_size=8, lr=0.05,
                         output=str(tmp_path / 'run'), num_workers=0, progress=False, checkpoint_every=0,
                         amp='bf16')
    metrics = train_segmentation(cfg)
    assert metrics['updates'] == 2
    assert torch.isfinite(torch.tensor(metrics['train_loss']))
