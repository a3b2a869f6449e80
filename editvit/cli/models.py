"""`editvit models`: list the models editvit registers (or any timm pattern) with their parameter counts."""
import argparse
import fnmatch
from typing import List

import timm
import torch

from . import UsageError


def editvit_models() -> List[str]:
    """Every model name that editvit registers with timm (EDIT, its CB and pooled variants, DeiT3+CB, PSViT)."""
    return sorted(name for name in timm.list_models()
                  if timm.models.model_entrypoint(name).__module__.startswith('editvit.'))


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser('models', help="list editvit's models (or any timm pattern) with parameter counts")
    p.add_argument('pattern', nargs='?', default=None,
                   help="timm name pattern, e.g. 'deit3_*' (default: every model editvit registers)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.pattern is not None and not args.pattern.strip():
        raise UsageError("the model pattern is empty; give one such as 'edit_*', or none for editvit's models")
    if args.pattern is None:
        names = editvit_models()
    else:
        names = timm.list_models(args.pattern) or fnmatch.filter(editvit_models(), args.pattern)
    if not names:
        raise UsageError(f'no registered model matches {args.pattern!r}; try `editvit models "*"`')
    for name in names:
        with torch.device('meta'):  # counting parameters needs no memory and no initialisation
            model = timm.create_model(name)
        print(f'{name:32s} {sum(p.numel() for p in model.parameters()) / 1e6:8.2f}M parameters')
    return 0
