"""`editvit models`: list the registered models with their parameter counts."""
import argparse

import timm
import torch

from . import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser('models', help='list registered models (EDIT and any timm pattern)')
    p.add_argument('pattern', nargs='?', default='edit_*', help="timm name pattern (default: 'edit_*')")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    names = timm.list_models(args.pattern)
    if not names:
        raise UsageError(f'no registered model matches {args.pattern!r}; try `editvit models "*"`')
    for name in names:
        with torch.device('meta'):  # counting parameters needs no memory and no initialisation
            model = timm.create_model(name)
        print(f'{name:32s} {sum(p.numel() for p in model.parameters()) / 1e6:8.2f}M parameters')
    return 0
