"""`editvit segment train` / `editvit segment eval`: Segmenter on EDIT or any timm ViT (paper Table 5), a thin layer
over `editvit.segmentation.train_segmentation` and `evaluate_checkpoint`.

Every field of `SegTrainConfig` / `SegEvalConfig` is an option (--crop-size for crop_size) and a key of the YAML given
with --config; command-line values win over the file.
"""
import argparse
import json

from . import UsageError
from .train import add_config_arguments, overrides_from


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..segmentation import SegEvalConfig, SegTrainConfig
    p = subparsers.add_parser('segment', help='semantic segmentation with Segmenter (paper Table 5)',
                              description='Train or evaluate a Segmenter (Mask Transformer or linear decoder) on an '
                                          'EDIT or timm ViT backbone.')
    actions = p.add_subparsers(dest='action', metavar='ACTION', required=True)
    train = actions.add_parser('train', help='train a Segmenter (recipe: editvit/configs/segmenter_ade20k.yaml)',
                               description='Train a Segmenter. Works under `torchrun --nproc_per_node N -m editvit '
                                           'segment train ...`.')
    add_config_arguments(train, SegTrainConfig)
    train.set_defaults(func=run_train)
    evaluate = actions.add_parser('eval', help='mIoU, pixel accuracy and per-class IoU of Segmenter weights (JSON)')
    add_config_arguments(evaluate, SegEvalConfig)
    evaluate.set_defaults(func=run_eval)


def run_train(args: argparse.Namespace) -> int:
    from ..errors import DataError
    from ..segmentation import SegTrainConfig, seg_config_for_resume, train_segmentation
    from ..train import ConfigError, NonFiniteLossError, load_config

    overrides = overrides_from(args, SegTrainConfig)
    try:
        if overrides.get('resume') and not args.config:
            if not overrides.get('output'):
                raise ConfigError('--resume needs --output DIR, the run to continue')
            config = seg_config_for_resume(overrides['output'], overrides)
        else:
            config = load_config(args.config, overrides, cls=SegTrainConfig)
        train_segmentation(config)
    except (ConfigError, DataError) as e:
        raise UsageError(str(e)) from e
    except NonFiniteLossError as e:
        raise UsageError(f'stopped: {e}; the last good checkpoint is kept') from e
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from ..errors import DataError
    from ..segmentation import SegEvalConfig, evaluate_checkpoint
    from ..train import ConfigError, load_config

    try:
        metrics = evaluate_checkpoint(load_config(args.config, overrides_from(args, SegEvalConfig), cls=SegEvalConfig))
    except (ConfigError, DataError) as e:
        raise UsageError(str(e)) from e
    print(json.dumps(metrics, indent=2))
    return 0
