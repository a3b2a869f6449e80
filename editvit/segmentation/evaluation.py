"""Validation of a Segmenter: mIoU over a whole split, single- or multi-scale, on one process or many."""
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import timm
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from ..data import ShardSampler
from ..errors import ConfigError
from ..threads import one_minute_load
from ..train import distributed as D
from ..train.engine import autocast, batches
from ..train.records import write_json, write_text
from ..weights import load_model_weights
from .config import SegEvalConfig
from .data import create_segmentation_dataset, create_segmentation_loader
from .inference import MULTI_SCALE_RATIOS, segment
from .metrics import IoUAccumulator, iou_table, segmentation_metrics
from .segmenter import Segmenter, create_segmenter
from .transforms import SegmentationEvalTransform


@torch.no_grad()
def evaluate_segmentation(model: Segmenter, loader: DataLoader, env: D.DistEnv, *, stride: Optional[int] = None,
                          ratios: Sequence[float] = (1.0,), flip: bool = False, amp: str = 'none',
                          class_names: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """mIoU, pixel accuracy, mean accuracy and per-class IoU over the loader's images on all ranks.

    Each batch is (images at the test scale, labels at the original size): the predictions are the argmax of the
    probabilities of `segment` (sliding windows of the model's input size), resized to the labels.
    """
    model.eval()
    window = model.img_size[0]
    meter = IoUAccumulator(model.num_classes)
    start, images = time.perf_counter(), 0
    for x, labels, _ in batches(loader):
        x, labels = x.to(env.device, non_blocking=True), labels.to(env.device, non_blocking=True)
        with autocast(env.device, amp):
            probs = segment(model, x, window, stride or window, ratios, flip, out_size=labels.shape[-2:])
        meter.update(probs.argmax(dim=1), labels)  # (B, H, W)
        images += len(x)
    areas = D.all_reduce_sum(meter.areas, env)
    total = int(D.all_reduce_sum(torch.tensor([float(images)]), env)[0])
    return {**segmentation_metrics(areas, class_names), 'images': total,
            'images_per_sec': total / max(time.perf_counter() - start, 1e-9)}


def eval_transform(model: nn.Module, scale_long: int, scale_short: int) -> SegmentationEvalTransform:
    data_cfg = timm.data.resolve_model_data_config(model.encoder)
    return SegmentationEvalTransform(data_cfg['mean'], data_cfg['std'], scale=(scale_long, scale_short))


def evaluate_saved_segmenter(cfg: SegEvalConfig) -> Dict[str, Any]:
    """Evaluate saved Segmenter weights on cfg.split; returns the metrics. With cfg.output, writes metrics.json,
    per_class_iou.md and cfg.pictures prediction pictures there. A config loaded with `run` evaluates the run's
    final weights at the run's own crop, test scale and stride, as its training did."""
    return D.run_distributed(_evaluate, cfg)


def _evaluate(cfg: SegEvalConfig, env: D.DistEnv) -> Dict[str, Any]:
    if cfg.output and Path(cfg.output).exists() and not Path(cfg.output).is_dir():
        raise ConfigError(f'output {cfg.output!r} is a file, not a folder; choose another --output')
    data = create_segmentation_dataset(cfg.dataset, cfg.data_dir, cfg.split, seed=cfg.seed,
                                       num_classes=cfg.num_classes or 3, image_size=cfg.synthetic_image_size,
                                       synthetic_samples=cfg.synthetic_samples,
                                       objects_dataset=cfg.objects_dataset)
    num_classes = cfg.num_classes or len(data.classes)
    if num_classes != len(data.classes):
        raise ConfigError(f'num_classes is {num_classes} but dataset {cfg.dataset!r} has {len(data.classes)}')
    model = create_segmenter(cfg.model, num_classes, cfg.crop_size, cfg.decoder, cfg.model_kwargs, drop_path=0.,
                             decoder_depth=cfg.decoder_depth)
    load_model_weights(model, cfg.checkpoint)
    model.to(env.device)
    transform = eval_transform(model, cfg.scale_long, cfg.scale_short)
    loader = create_segmentation_loader(data, transform, ShardSampler(len(data), env.rank, env.world_size),
                                        cfg.batch_size, cfg.num_workers, pin_memory=env.device.type == 'cuda')
    ratios = MULTI_SCALE_RATIOS if cfg.multi_scale else (1.0,)
    metrics = {'model': cfg.model, 'decoder': cfg.decoder, 'checkpoint': str(cfg.checkpoint),
               'dataset': cfg.dataset, 'split': cfg.split, 'multi_scale': cfg.multi_scale,
               'flip': cfg.flip or cfg.multi_scale,
               **evaluate_segmentation(model, loader, env, stride=cfg.eval_stride, ratios=ratios,
                                       flip=cfg.flip or cfg.multi_scale, amp=cfg.amp, class_names=data.classes),
               'threads': torch.get_num_threads(), 'load': one_minute_load()}
    if cfg.output and env.is_main:
        out = Path(cfg.output)
        write_json(out / 'metrics.json', metrics)
        write_text(out / 'per_class_iou.md', iou_table(metrics['per_class_iou']))
        if cfg.pictures:
            from .pictures import save_predictions
            save_predictions(model, data, transform, out / 'pictures', cfg.pictures, env.device,
                             stride=cfg.eval_stride, ratios=ratios, flip=cfg.flip or cfg.multi_scale)
    return metrics
