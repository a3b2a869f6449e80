"""Segmenter training under torchrun (2 CPU processes, gloo) and with bf16 autocast, through the same engine."""
import json
import os
import subprocess
import sys

import torch

import pytest

from editvit.segmentation import SegEvalConfig, SegTrainConfig, evaluate_saved_segmenter, train_segmentation
from editvit.train.checkpoint import LAST, load_checkpoint

ARGS = ['--model', 'edit_tiny_patch16_224', '--model-kwargs', 'patch_size=8', 'embed_dim=32', 'depth=2',
        'num_heads=2', '--crop-size', '32', '--scale-long', '128', '--scale-short', '32', '--dataset', 'synthetic',
        '--synthetic-samples', '32', '--num-workers', '0', '--batch-size', '4', '--epochs', '1', '--no-progress']


def test_two_process_segmentation_training(tmp_path):
    out = tmp_path / 'run'
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', '-m', 'editvit',
           'segment', 'train', *ARGS, '--output', str(out)]
    result = subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS='1'), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    state = load_checkpoint(out / LAST)
    assert len(state['ranks']) == 2  # both ranks' RNG states are kept for an exact resume
    assert state['updates'] == 32 // (4 * 2)  # 32 images, 4 per rank and step, 2 ranks
    metrics = json.loads((out / 'metrics.json').read_text())
    assert metrics['updates'] == 4 and metrics['global_batch'] == 8
    # the validation metrics, summed over the two ranks' shares, equal a single-process evaluation of the weights
    one = evaluate_saved_segmenter(SegEvalConfig(
        model='edit_tiny_patch16_224', model_kwargs=dict(patch_size=8, embed_dim=32, depth=2, num_heads=2),
        checkpoint=str(out / 'model.safetensors'), dataset='synthetic', synthetic_samples=32, crop_size=32,
        scale_long=128, scale_short=32, num_workers=0, device='cpu'))
    assert one['mIoU'] == pytest.approx(metrics['val_mIoU']) and one['mAcc'] == pytest.approx(metrics['val_mAcc'])
    assert one['per_class_iou'] == metrics['per_class_iou'] and set(one['per_class_iou']) == {
        'background', 'object_1', 'object_2'}


def test_bf16_autocast_segmentation_training(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = SegTrainConfig(model='edit_tiny_patch16_224', model_kwargs=dict(patch_size=8, embed_dim=32, depth=2,
                                                                              num_heads=2),
                             dataset='synthetic', num_classes=3, synthetic_samples=16, synthetic_image_size=32,
                             crop_size=32, scale_long=128, scale_short=32, epochs=1, batch_size=8, lr=0.05,
                             output=str(tmp_path / 'run'), num_workers=0, progress=False, checkpoint_every=0,
                             amp='bf16')
        metrics = train_segmentation(cfg)
    finally:
        torch.set_num_threads(threads)
    assert metrics['updates'] == 2
    assert torch.isfinite(torch.tensor(metrics['train_loss']))
