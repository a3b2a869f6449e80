"""Nearest-class-mean baseline on raw pixels, on the suite's subsets (benchmarks/suite.py): how far a classifier
with no learning beyond one mean image per class gets on the very images the suite trains and tests on.

    OMP_NUM_THREADS=1 EDITVIT_DATA=/tmp/data nice -n 5 .venv/bin/python benchmarks/nearest_class_mean.py \
        --datasets cifar10 fashion-mnist --per-class-train 400 --per-class-test 100

The subsets come from the library's `make_subset` (same selection seed, so the same images as the suite) and are
read back as the models read them at evaluation: the PNG class folders through the engine's eval transform
(resize + centre crop to the image size, ImageNet mean/std per channel, no augmentation), flattened to vectors of
3 x H x W. Two pixel spaces: those vectors as they are, and standardised per pixel with the training subset's mean
and std. Each class is its training mean; a test image's classes are ranked by Euclidean distance to the means
(top-1, top-5). Rows go to benchmarks/results/nearest_class_mean.jsonl; a rerun replaces its own rows.

The per-channel mean/std matter only to the unstandardised CIFAR-10 row: on 0-255 (or [0, 1]) pixels it is 27.8%
top-1, not 27.7%, because dividing by the channels' slightly different stds reweights the colours (4 of 1,000
predictions change, net one); Fashion-MNIST's three channels are the same grey, so its ranking cannot change.
"""
import argparse
import sys
from pathlib import Path
from typing import List, Optional, Tuple

import timm
import torch

from editvit.data import create_dataset, create_eval_transform
from editvit.experiments import Budget, Subset, make_subset, read_rows, variant_model, write_rows
from editvit import create_model

RESULTS = Path(__file__).parent / 'results' / 'nearest_class_mean.jsonl'
DATASETS = ('cifar10', 'fashion-mnist')
KEY = ('dataset', 'train_images', 'test_images', 'standardised')  # a rerun replaces the rows with the same key


def class_means(x: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """x [N, D], y [N] -> the mean of each class [C, D] (every class must occur)."""
    sums = torch.zeros(num_classes, x.shape[1], dtype=x.dtype).index_add_(0, y, x)  # [C, D]
    counts = torch.bincount(y, minlength=num_classes)  # [C]
    if (counts == 0).any():
        raise ValueError(f'classes {torch.flatnonzero(counts == 0).tolist()} have no training images')
    return sums / counts[:, None].to(x.dtype)


def rank_classes(x: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """x [M, D], means [C, D] -> classes [M, C] of each row, nearest mean (Euclidean) first."""
    dist = torch.cdist(x, means, compute_mode='donot_use_mm_for_euclid_dist')  # [M, C], exact differences
    return dist.argsort(dim=1, stable=True)


def topk_accuracy(ranking: torch.Tensor, y: torch.Tensor, k: int) -> float:
    """ranking [M, C], y [M] -> % of rows whose label is among the first k classes."""
    return 100.0 * (ranking[:, :k] == y[:, None]).any(dim=1).double().mean().item()


def standardise(train: torch.Tensor, test: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """train [N, D], test [M, D] -> both with the training mean and std per pixel removed. A pixel constant in
    training (std 0) is only centred: it adds the same distance to every class mean, so it cannot change a ranking."""
    mean, std = train.mean(dim=0), train.std(dim=0)  # [D], [D]
    std = torch.where(std > 0, std, torch.ones_like(std))
    return (train - mean) / std, (test - mean) / std


def nearest_class_mean(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                       num_classes: int) -> Tuple[float, float]:
    """(top-1, top-5) in % of the nearest-class-mean classifier: train_x [N, D], train_y [N], test_x [M, D],
    test_y [M]."""
    ranking = rank_classes(test_x, class_means(train_x, train_y, num_classes))  # [M, C]
    return topk_accuracy(ranking, test_y, 1), topk_accuracy(ranking, test_y, min(5, num_classes))


def pixels(subset: Subset, split: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """One split of a written subset as the suite's models see it at evaluation: (x [N, 3*H*W] float64, y [N])."""
    name, kwargs = variant_model('edit', Budget(), subset.image_size)  # every variant has timm's ImageNet config
    cfg = timm.data.resolve_model_data_config(create_model(name, len(subset.classes), kwargs))
    transform = create_eval_transform((subset.image_size, subset.image_size), cfg['mean'], cfg['std'],
                                      interpolation=cfg['interpolation'])  # crop ratio 1.0, as in the recipes
    data = create_dataset('imagefolder', str(subset.root), split)
    images, labels = zip(*((transform(image), label) for image, label in data))  # ([3, H, W], int) per image
    return torch.stack(images).flatten(1).double(), torch.tensor(labels)  # [N, 3*H*W], [N]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--datasets', nargs='+', choices=DATASETS, default=list(DATASETS))
    p.add_argument('--data-dir', type=Path, help='folder holding cifar10/ and fashion-mnist/ (default: $EDITVIT_DATA)')
    p.add_argument('--per-class-train', '--train-per-class', type=int, default=400,
                   help='training images per class (default: 400, as the suite)')
    p.add_argument('--per-class-test', '--test-per-class', type=int, default=100,
                   help='test images per class (default: 100, as the suite)')
    p.add_argument('--work', type=Path, default=Path('runs/nearest_class_mean'),
                   help='where the subsets are written (default: runs/nearest_class_mean); a folder written from '
                        'another --data-dir is an error: choose another')
    p.add_argument('--results', type=Path, default=RESULTS, help=f'JSON-lines file (default: {RESULTS})')
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    rows = []
    for dataset in args.datasets:
        subset = make_subset(dataset, args.data_dir / dataset if args.data_dir else None,
                             args.work / 'data' / f'{dataset}-{args.per_class_train}-{args.per_class_test}',
                             args.per_class_train, args.per_class_test)
        (train_x, train_y), (test_x, test_y) = pixels(subset, 'train'), pixels(subset, 'val')
        for standardised in (False, True):
            xs = standardise(train_x, test_x) if standardised else (train_x, test_x)
            top1, top5 = nearest_class_mean(xs[0], train_y, xs[1], test_y, len(subset.classes))
            rows.append(dict(dataset=dataset, train_images=len(train_y), test_images=len(test_y),
                             image_size=subset.image_size, standardised=standardised, top1=round(top1, 2),
                             top5=round(top5, 2)))
    new = {tuple(r[k] for k in KEY) for r in rows}
    kept = [r for r in read_rows(args.results) if tuple(r.get(k) for k in KEY) not in new]
    write_rows(args.results, kept + rows)
    print('| dataset | train / test images | pixels | top-1 (%) | top-5 (%) |\n|---|---|---|---|---|')
    for r in rows:
        space = 'standardised per pixel' if r['standardised'] else 'as the model sees them'
        print(f"| {r['dataset']} | {r['train_images']} / {r['test_images']} | {space} | {r['top1']:.1f} | "
              f"{r['top5']:.1f} |")
    print(f'rows: {args.results}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
