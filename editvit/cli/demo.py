"""`editvit demo`: train a small EDIT and DeiT3 on CIFAR-10, evaluate, analyse, and write a report folder."""
import argparse
import os


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        'demo', help='EDIT vs DeiT3 on a CIFAR-10 subset: train, evaluate, sink analysis, report (~10 min on CPU)',
        description='Trains EDIT and DeiT3 of the same width and depth on a CIFAR-10 subset, evaluates both, '
                    'measures their attention sinks and draws their sequential attention maps on test images, and '
                    'writes OUTPUT/README.md, results.jsonl, training.png and analysis/. Data: --data-dir, else '
                    '$EDITVIT_DATA/cifar10, else a torchvision download.')
    p.add_argument('--data-dir', metavar='DIR',
                   help="CIFAR-10: train/<class>/*.jpg and test/<class>/*.jpg, or torchvision's cifar-10-batches-py/ "
                        '(default: $EDITVIT_DATA/cifar10)')
    p.add_argument('--download-root', metavar='DIR', help='where torchvision downloads CIFAR-10 when no data is given '
                                                          '(default: ~/.cache/editvit/cifar10)')
    p.add_argument('--output', default='runs/demo', metavar='DIR', help='report folder (default: runs/demo)')
    p.add_argument('--epochs', type=int, help='training epochs (default: the demo budget\'s)')
    p.add_argument('--train-per-class', type=int, help='training images per class (default: 500)')
    p.add_argument('--seed', type=int, default=0, help='training seed (default: 0)')
    p.add_argument('--threads', type=int, help='torch CPU threads (default: the idle cores: cores minus the load)')
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..experiments import DEMO_BUDGET, MissingDataError, run_demo
    from ..experiments.demo import DEMO_TRAIN_PER_CLASS
    from . import UsageError

    for option, value, least in (('--epochs', args.epochs, 1), ('--train-per-class', args.train_per_class, 1),
                                 ('--threads', args.threads, 1), ('--seed', args.seed, 0)):
        if value is not None and value < least:  # checked before the data is looked for
            raise UsageError(f'{option} must be at least {least}, got {value}')
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise UsageError(f'output {args.output!r} is a file, not a folder; choose another --output')
    budget = replace(DEMO_BUDGET, epochs=args.epochs) if args.epochs else DEMO_BUDGET
    try:
        report = run_demo(args.output, data_dir=args.data_dir, budget=budget, download_root=args.download_root,
                          train_per_class=args.train_per_class or DEMO_TRAIN_PER_CLASS, seed=args.seed,
                          threads=args.threads)
    except MissingDataError as e:
        raise UsageError(str(e)) from e
    print()
    print(report.summary)
    print(f'report: {report.output}/README.md')
    return 0
