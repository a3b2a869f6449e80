"""`editvit segment train` / `editvit segment eval`: Segmenter on EDIT or any timm ViT (paper Table 5), a thin layer
over `editvit.segmentation.train_segmentation` and `evaluate_saved_segmenter`.

Every field of `SegTrainConfig` / `SegEvalConfig` is an option (--crop-size for crop_size) and a key of the YAML given
with --config; command-line values win over the file.
"""
import argparse

from .train import add_config_arguments, run_evaluation, run_training


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
    from ..segmentation import SegTrainConfig, train_segmentation
    return run_training(args, SegTrainConfig, train_segmentation)


def run_eval(args: argparse.Namespace) -> int:
    from ..segmentation import SegEvalConfig, evaluate_saved_segmenter
    return run_evaluation(args, SegEvalConfig, evaluate_saved_segmenter)
