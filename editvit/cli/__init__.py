"""The `editvit` command line: a thin layer over the library API.

Each module in this package is one subcommand: it defines `register(subparsers)`, which adds its parser and sets
`func` to a callable taking the parsed arguments and returning an exit code. Modules are found automatically.
"""
import argparse
import importlib
import pkgutil
import sys
from typing import List, Optional


class UsageError(Exception):
    """Bad input from the user: printed as one clear message, without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='editvit', description='EDIT (Encoder-Decoder Image Transformer) and attention-sink tools.')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f'{__name__}.{info.name}')
        if hasattr(module, 'register'):
            module.register(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    import editvit  # noqa: F401  registers the models with timm
    from ..errors import CheckpointError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UsageError, CheckpointError, FileNotFoundError) as e:
        print(f'editvit {args.command}: error: {e}', file=sys.stderr)
        return 2
