"""EDIT vs DeiT3 as Segmenter backbones (paper Table 5, scaled down to a CPU): the synthetic segmentation set,
backbones of the same size trained from scratch with the same budget, several seeds; single- and multi-scale mIoU.

    .venv/bin/python benchmarks/segmentation.py [--seeds 0 1 2] [--epochs 8] [--samples 512] [--threads 1]

Each run is `editvit segment train --config editvit/configs/segmenter_synthetic_cpu.yaml --model BACKBONE ...`
followed by `editvit segment eval --multi-scale` on the same weights. One JSON line per run is appended to
benchmarks/results/segmentation.jsonl; a table of means and standard deviations over seeds is printed.
"""
import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

import editvit  # noqa: F401  registers the EDIT models
from editvit.segmentation import SegEvalConfig, SegTrainConfig, evaluate_saved_segmenter, train_segmentation
from editvit.train import load_config

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / 'editvit' / 'configs' / 'segmenter_synthetic_cpu.yaml'
RESULTS = ROOT / 'benchmarks' / 'results' / 'segmentation.jsonl'
BACKBONES = ('edit_tiny_patch16_224', 'deit3_small_patch16_224')  # both take the config's model_kwargs


def run(backbone: str, seed: int, epochs: int, samples: int, folder: Path) -> dict:
    overrides = dict(model=backbone, seed=seed, epochs=epochs, synthetic_samples=samples, output=str(folder),
                     progress=False)
    cfg = load_config(CONFIG, overrides, cls=SegTrainConfig)
    start = time.perf_counter()
    trained = train_segmentation(cfg)
    train_s = time.perf_counter() - start
    multi = evaluate_saved_segmenter(SegEvalConfig(
        model=backbone, model_kwargs=cfg.model_kwargs, decoder=cfg.decoder,
        checkpoint=str(folder / 'model.safetensors'),
        dataset=cfg.dataset, num_classes=cfg.num_classes, synthetic_samples=samples,
        synthetic_image_size=cfg.synthetic_image_size, crop_size=cfg.crop_size, scale_long=cfg.scale_long,
        scale_short=cfg.scale_short, multi_scale=True, batch_size=cfg.eval_batch_size, num_workers=0, seed=seed))
    return {'backbone': backbone, 'seed': seed, 'epochs': epochs, 'train_samples': samples,
            'updates': trained['updates'], 'num_params': trained['num_params'],
            'mIoU_single_scale': round(trained['val_mIoU'], 3), 'mIoU_multi_scale': round(multi['mIoU'], 3),
            'pixel_acc': round(trained['val_pixel_acc'], 3), 'per_class_iou': trained['per_class_iou'],
            'train_seconds': round(train_s, 1), 'model_kwargs': cfg.model_kwargs,
            'config': str(CONFIG.relative_to(ROOT)), 'torch_threads': torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--epochs', type=int, default=8)
    parser.add_argument('--samples', type=int, default=512, help='training images of the synthetic set')
    parser.add_argument('--threads', type=int, default=1, help='torch threads (1: fastest for these tiny models '
                        'on a shared CPU)')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for backbone in BACKBONES:  # interleaved, so a slower stretch of a shared machine hits both
                row = run(backbone, seed, args.epochs, args.samples, Path(tmp) / f'{backbone}_{seed}')
                rows.append(row)
                with open(RESULTS, 'a') as f:
                    f.write(json.dumps(row) + '\n')
    print('| backbone | params | seeds | single-scale mIoU | multi-scale mIoU | train s/run |')
    print('|---|---:|---:|---:|---:|---:|')
    for backbone in BACKBONES:
        mine = [r for r in rows if r['backbone'] == backbone]
        cells = []
        for key in ('mIoU_single_scale', 'mIoU_multi_scale'):
            values = [r[key] for r in mine]
            sd = statistics.stdev(values) if len(values) > 1 else 0.
            cells.append(f'{statistics.mean(values):.2f} ± {sd:.2f}')
        print(f'| {backbone} | {mine[0]["num_params"] / 1e6:.3f}M | {len(mine)} | {cells[0]} | {cells[1]} | '
              f'{statistics.mean(r["train_seconds"] for r in mine):.0f} |')


if __name__ == '__main__':
    main()
