"""The toy-scale suite: every way to treat [CLS] at one width, depth and training budget, several seeds, on CIFAR-10
and Fashion-MNIST subsets; one JSON line per finished run (benchmarks/results/suite.jsonl). The comparison on the
whole data sets with the small-data recipes is benchmarks/full.py (results/full.jsonl).

    EDITVIT_DATA=~/data nice -n 5 .venv/bin/python benchmarks/suite.py --datasets cifar10 --models edit deit3 \
        --seeds 0 1 2
    .venv/bin/python benchmarks/plot_suite.py      # table, EDIT-vs-DeiT3 comparison, plot

Runs already in the results file (same model, data set, budget, seed and subset) are skipped, so the command can be
repeated after an interruption, or with more seeds or models. Data: $EDITVIT_DATA/<dataset> or --data-dir-*.
Variants: editvit/experiments/variants.py.

With --remeasure-sink nothing is trained: the selected rows already in the results file get their sink metrics
measured again from their runs' saved weights (after the analysis learnt to read a model, e.g. PSViT), and the
file is rewritten in place.
"""
import argparse
import sys
import time
from pathlib import Path

import torch

from editvit.experiments import (VARIANTS, Budget, append_row, make_subset, read_rows, remeasure_sink, run_experiment,
                                 write_rows)

RESULTS = Path(__file__).parent / 'results' / 'suite.jsonl'
DATASETS = ('cifar10', 'fashion-mnist')


def parse_args(argv=None) -> argparse.Namespace:
    b = Budget()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--datasets', nargs='+', choices=DATASETS + ('synthetic',), default=list(DATASETS))
    p.add_argument('--models', nargs='+', choices=VARIANTS, default=list(VARIANTS))
    p.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    p.add_argument('--train-per-class', type=int, default=400, help='training images per class (default: 400)')
    p.add_argument('--test-per-class', type=int, default=100, help='test images per class (default: 100)')
    for name in ('embed_dim', 'depth', 'num_heads', 'patch_size', 'epochs', 'batch_size', 'analysis_images'):
        p.add_argument('--' + name.replace('_', '-'), type=int, default=getattr(b, name))
    p.add_argument('--warmup-epochs', type=float, default=b.warmup_epochs)
    p.add_argument('--lr', type=float, default=b.lr)
    p.add_argument('--data-dir-cifar10', help='CIFAR-10 folder (default: $EDITVIT_DATA/cifar10)')
    p.add_argument('--data-dir-fashion-mnist', help='Fashion-MNIST folder (default: $EDITVIT_DATA/fashion-mnist)')
    p.add_argument('--results', type=Path, default=RESULTS, help=f'JSON-lines file (default: {RESULTS})')
    p.add_argument('--threads', type=int, help='torch CPU threads (default: torch\'s, which follows OMP_NUM_THREADS); '
                                              'on a shared CPU use 1: more threads than idle cores spin-wait')
    p.add_argument('--work', type=Path, default=Path('runs/suite'), help='subsets and run folders (default: '
                                                                         'runs/suite)')
    p.add_argument('--remeasure-sink', action='store_true',
                   help='train nothing: measure the sink metrics of the selected finished runs again from their '
                        'saved weights and rewrite their rows')
    return p.parse_args(argv)


def budget_from(args: argparse.Namespace) -> Budget:
    return Budget(embed_dim=args.embed_dim, depth=args.depth, num_heads=args.num_heads, patch_size=args.patch_size,
                  epochs=args.epochs, warmup_epochs=args.warmup_epochs, batch_size=args.batch_size, lr=args.lr,
                  analysis_images=args.analysis_images)


def run_key(row) -> tuple:
    return row['model'], row['dataset'], row['budget'], row['seed'], row['train_images'], row['test_images']


def subsets(args: argparse.Namespace):
    """(dataset, subset, number of training images, number of test images) for each selected data set."""
    for dataset in args.datasets:
        data_dir = getattr(args, 'data_dir_' + dataset.replace('-', '_'), None)
        subset = make_subset(dataset, data_dir, args.work / 'data' / f'{dataset}-{args.train_per_class}-'
                                                                     f'{args.test_per_class}',
                             args.train_per_class, args.test_per_class)
        yield dataset, subset, args.train_per_class * len(subset.classes), args.test_per_class * len(subset.classes)


def run_dir(args: argparse.Namespace, dataset: str, budget: Budget, model: str, seed: int) -> Path:
    return args.work / dataset / f'{budget.tag()}-n{args.train_per_class}' / f'{model}-s{seed}'


def remeasure(args: argparse.Namespace, budget: Budget) -> int:
    rows = read_rows(args.results)
    for dataset, subset, n_train, n_test in subsets(args):
        selected = {(m, dataset, budget.tag(), s, n_train, n_test) for m in args.models for s in args.seeds}
        for i, row in enumerate(rows):
            if run_key(row) not in selected:
                continue
            rows[i] = remeasure_sink(row, subset, run_dir(args, dataset, budget, row['model'], row['seed']))
            write_rows(args.results, rows)  # after each run: an interruption keeps what was measured
            sink = rows[i]['sink'] or {}
            print(f'{row["model"]} {dataset} seed {row["seed"]}: max-token ratio '
                  f'{sink.get("mean_max_token_ratio")} | sink rate (> 10/N) {sink.get("token_sink_rate")}', flush=True)
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    budget = budget_from(args)
    if args.remeasure_sink:
        return remeasure(args, budget)
    done = {run_key(r) for r in read_rows(args.results)}
    for dataset, subset, n_train, n_test in subsets(args):
        for model in args.models:
            for seed in args.seeds:
                if (model, dataset, budget.tag(), seed, n_train, n_test) in done:
                    print(f'skip {model} {dataset} {budget.tag()} seed {seed}: in {args.results}', flush=True)
                    continue
                start = time.perf_counter()
                result = run_experiment(model, subset, seed, budget, run_dir(args, dataset, budget, model, seed))
                append_row(args.results, result.row)
                sink = result.row['sink'] or {}
                print(f'{model} {dataset} seed {seed}: top-1 {result.row["top1"]:.2f} | max-token ratio '
                      f'{sink.get("mean_max_token_ratio")} | {time.perf_counter() - start:.0f}s', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
