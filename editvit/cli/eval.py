"""`editvit eval`: top-1, top-5, loss and images per second of saved weights, as JSON on stdout."""
import argparse
import json

from . import UsageError
from .train import add_config_arguments, overrides_from


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..train import EvalConfig
    p = subparsers.add_parser('eval', help='evaluate weights on a data set (JSON output)')
    add_config_arguments(p, EvalConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import DataError
    from ..train import ConfigError, EvalConfig, evaluate_checkpoint, load_config

    try:
        metrics = evaluate_checkpoint(load_config(args.config, overrides_from(args, EvalConfig), cls=EvalConfig))
    except (ConfigError, DataError) as e:
        raise UsageError(str(e)) from e
    print(json.dumps(metrics, indent=2))
    return 0
