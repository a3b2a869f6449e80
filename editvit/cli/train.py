"""`editvit train`: train any timm model with the paper's DeiT3 recipe (a thin layer over `editvit.train.train`).

Every field of `TrainConfig` is an option (--batch-size for batch_size, --compile/--no-compile for booleans) and a key
of the YAML given with --config; command-line values win over the file.
"""
import argparse
import ast
import typing
from dataclasses import fields
from typing import Any, Callable, Dict, Literal, Type

import yaml

from . import UsageError

_COMMAND_LINE_ONLY = ('config',)


def parse_kwargs(items) -> Dict[str, Any]:
    """['img_size=32', 'qkv_bias=False'] -> {'img_size': 32, 'qkv_bias': False}, values read as Python literals
    (as timm's train.py does) or YAML scalars, else kept as strings."""
    out = {}
    for item in items:
        if '=' not in item:
            raise UsageError(f'model kwarg {item!r} is not of the form key=value')
        key, text = item.split('=', 1)
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = yaml.safe_load(text) if text else text
        out[key] = value
    return out


def _or_none(tp: Type) -> Any:
    """An argparse type for an optional value: 'none' or 'null' unsets it (e.g. --clip-grad none)."""
    def parse(text: str) -> Any:
        return None if text.lower() in ('none', 'null') else tp(text)
    parse.__name__ = tp.__name__  # argparse names the type in its error messages
    return parse


def add_config_arguments(parser: argparse.ArgumentParser, cls: Type) -> None:
    """One option per config field; unset options stay out of the parsed namespace, so the YAML value stands."""
    types = typing.get_type_hints(cls)
    for f in fields(cls):
        flag, tp = '--' + f.name.replace('_', '-'), types[f.name]
        optional = typing.get_origin(tp) is typing.Union
        if optional:
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        kwargs: Dict[str, Any] = dict(default=argparse.SUPPRESS, help=f.metadata.get('help'))
        if f.name == 'model_kwargs':
            parser.add_argument(flag, nargs='*', metavar='KEY=VALUE', **kwargs)
        elif tp is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        elif typing.get_origin(tp) is Literal:
            parser.add_argument(flag, choices=typing.get_args(tp), **kwargs)
        else:
            parser.add_argument(flag, type=_or_none(tp) if optional else tp, metavar=f.name.upper(), **kwargs)
    parser.add_argument('--config', metavar='FILE.yaml', help='YAML file of config values')


def overrides_from(args: argparse.Namespace, cls: Type) -> Dict[str, Any]:
    names = {f.name for f in fields(cls)}
    values = {k: v for k, v in vars(args).items() if k in names}
    if 'model_kwargs' in values:
        values['model_kwargs'] = parse_kwargs(values['model_kwargs'])
    return values


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..train import TrainConfig
    p = subparsers.add_parser(
        'train', help='train a timm model with the DeiT3 recipe (paper Table 2)',
        description='Train any timm model (EDIT, DeiT3, ...) with the paper\'s recipe. Works under '
                    '`torchrun --nproc_per_node N -m editvit train ...`.')
    add_config_arguments(p, TrainConfig)
    p.set_defaults(func=run)


def run_training(args: argparse.Namespace, cls: Type, train_fn: Callable[[Any], Dict[str, Any]]) -> int:
    """Build a `cls` config from --config and the options (or, for --resume alone, from the run's saved config) and
    train with it; bad input and a non-finite loss become one line."""
    from ..errors import DataError
    from ..train import ConfigError, NonFiniteLossError, config_for_resume, load_config

    overrides = overrides_from(args, cls)
    try:
        if overrides.get('resume') and overrides.get('overwrite'):
            raise ConfigError('--resume continues a run and --overwrite starts it again: pass one of them')
        if overrides.get('resume') and not args.config:
            if not overrides.get('output'):
                raise ConfigError('--resume needs --output DIR, the run to continue')
            config = config_for_resume(overrides['output'], overrides, cls)
        else:
            config = load_config(args.config, overrides, cls=cls)
        train_fn(config)
    except (ConfigError, DataError) as e:
        raise UsageError(str(e)) from e
    except NonFiniteLossError as e:
        raise UsageError(f'stopped: {e}; the last good checkpoint is kept') from e
    return 0


def run_evaluation(args: argparse.Namespace, cls: Type, evaluate_fn: Callable[[Any], Dict[str, Any]]) -> int:
    """Build a `cls` config from --config and the options, evaluate with it and print the metrics as JSON."""
    from ..errors import DataError
    from ..train import ConfigError, load_config
    from ..strict_json import to_json

    try:
        metrics = evaluate_fn(load_config(args.config, overrides_from(args, cls), cls=cls))
    except (ConfigError, DataError) as e:
        raise UsageError(str(e)) from e
    print(to_json(metrics))
    return 0


def run(args: argparse.Namespace) -> int:
    from ..train import TrainConfig, train
    return run_training(args, TrainConfig, train)
