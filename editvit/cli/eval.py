"""`editvit eval`: top-1, top-5, loss and images per second of saved weights, as JSON on stdout (a thin layer over
`editvit.train.evaluate_saved_classifier`)."""
import argparse

from .train import add_config_arguments, run_evaluation


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..train import EvalConfig
    p = subparsers.add_parser('eval', help='evaluate weights on a data set (JSON output)')
    add_config_arguments(p, EvalConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..train import EvalConfig, evaluate_saved_classifier
    return run_evaluation(args, EvalConfig, evaluate_saved_classifier)
