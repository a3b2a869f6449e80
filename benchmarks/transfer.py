"""Transfer check in the spirit of the paper's Table 4: fine-tune the CIFAR-10 suite models (32x32, patch grid 8x8)
on Fashion-MNIST (28x28: the position embedding is resampled to 7x7, the head reset), EDIT vs DeiT3, per seed.

    EDITVIT_DATA=~/data nice -n 5 .venv/bin/python benchmarks/transfer.py --models edit deit3 --seeds 0 1 2
    .venv/bin/python benchmarks/plot_suite.py --results benchmarks/results/suite_transfer.jsonl \
        --plot benchmarks/results/suite_transfer.png

The weights come from the suite's run folders (--work, same budget and --source-train-per-class as the suite run);
a missing source run is an error naming its folder. Rows go to benchmarks/results/suite_transfer.jsonl with
`finetune` set to the source weights.
"""
import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from editvit.experiments import append_row, make_subset, read_rows, run_experiment

sys.path.insert(0, str(Path(__file__).parent))
from suite import budget_from, parse_args as suite_args, run_key  # noqa: E402  the suite's budget options

RESULTS = Path(__file__).parent / 'results' / 'suite_transfer.jsonl'


def main(argv=None) -> int:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument('--source-train-per-class', type=int, default=400,
                   help='the suite subset the CIFAR-10 models were trained on (default: 400)')
    p.add_argument('--source-epochs', type=int, help='epochs of the source runs (default: --epochs)')
    own, rest = p.parse_known_args(argv)
    args = suite_args(rest + ['--datasets', 'fashion-mnist'] + ([] if '--results' in rest else
                                                                ['--results', str(RESULTS)]))
    if args.threads:
        torch.set_num_threads(args.threads)
    budget = budget_from(args)
    source_budget = replace(budget, epochs=own.source_epochs or budget.epochs)
    subset = make_subset('fashion-mnist', args.data_dir_fashion_mnist,
                         args.work / 'data' / f'fashion-mnist-{args.train_per_class}-{args.test_per_class}',
                         args.train_per_class, args.test_per_class)
    done = {run_key(r) for r in read_rows(args.results)}
    n_train, n_test = args.train_per_class * 10, args.test_per_class * 10
    for model in args.models:
        for seed in args.seeds:
            if (model, 'fashion-mnist', budget.tag(), seed, n_train, n_test) in done:
                print(f'skip {model} seed {seed}: in {args.results}', flush=True)
                continue
            source = (args.work / 'cifar10' / f'{source_budget.tag()}-n{own.source_train_per_class}' /
                      f'{model}-s{seed}' / 'model.safetensors')
            if not source.is_file():
                raise FileNotFoundError(f'no CIFAR-10 weights for {model} seed {seed}: {source} (run '
                                        f'benchmarks/suite.py --datasets cifar10 first)')
            start = time.perf_counter()
            out = args.work / 'transfer' / f'{budget.tag()}-n{args.train_per_class}' / f'{model}-s{seed}'
            result = run_experiment(model, subset, seed, budget, out, finetune=source)
            append_row(args.results, result.row)
            print(f'{model} seed {seed}: fine-tuned top-1 {result.row["top1"]:.2f} | '
                  f'{time.perf_counter() - start:.0f}s', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
