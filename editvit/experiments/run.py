"""One run of the suite: train a variant on a subset with the engine, measure its attention sink on test images,
and return everything as one result row."""
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

from ..analysis import ModelAnalysis, UnsupportedModelError, analyze_model
from ..configs import recipe_path
from ..macs import count_macs
from ..models.factory import create_model
from ..train import from_dict, train
from ..train.config import TrainConfig, read_yaml
from .budget import Budget
from .machine import describe_machine
from .subset import Subset
from .whole import WholeDataSet
from .variants import variant_model

PathLike = Union[str, Path]
Data = Union[Subset, WholeDataSet]  # what a run trains and tests on: a written subset or a whole data set
# the recipe of each data set: its CPU config (augmentation, optimiser, fp32); model, size and schedule come from
# the Budget. Synthetic images are coloured like CIFAR.
RECIPES = {'cifar10': 'cifar10_cpu.yaml', 'fashion-mnist': 'fashion_mnist_cpu.yaml', 'synthetic': 'cifar10_cpu.yaml'}
SINK_SUMMARY_KEYS = ('mean_sink_ratio', 'min_sink_ratio', 'mean_max_token_ratio', 'max_token_attention',
                     'cls_sink_rate', 'token_sink_rate', 'mean_entropy', 'max_norm_ratio', 'mean_high_norm_fraction',
                     'cls_query_entropy_first', 'cls_query_entropy_last', 'cls_query_entropy_slope',
                     'mean_cls_query_to_cls')


@dataclass
class RunResult:
    """row: the JSON result row; analysis: the sink analysis (None where the model's attention cannot be read);
    run_dir: the engine's run folder (model.safetensors, summary.csv, log.txt, ...)."""
    row: Dict[str, Any]
    analysis: Optional[ModelAnalysis]
    run_dir: Path


def dataset_recipe(dataset: str) -> Path:
    """The shipped recipe (editvit/configs/) a data set is trained with."""
    if dataset not in RECIPES:
        raise ValueError(f'no recipe for data set {dataset!r}; known: {", ".join(RECIPES)}')
    return recipe_path(RECIPES[dataset])


def train_config(variant: str, subset: Data, seed: int, budget: Budget, output: PathLike,
                 finetune: Optional[PathLike] = None, num_workers: int = 0) -> TrainConfig:
    """The engine config of a run: the data set's recipe with the variant, size and schedule of the budget.

    The recipe's model_kwargs are replaced, not merged: variants take different arguments (PSViT has no `depth`); its
    batch is the budget's."""
    name, kwargs = variant_model(variant, budget, subset.image_size)
    values = dict(read_yaml(dataset_recipe(subset.dataset)), model=name, model_kwargs=kwargs,
                  dataset=subset.engine_dataset, data_dir=str(subset.root) if subset.root else None,
                  epochs=budget.epochs, warmup_epochs=budget.warmup_epochs, batch_size=budget.batch_size, lr=budget.lr,
                  global_batch_size=None,  # the budget's batch is the whole update, in one process
                  seed=seed, output=str(output),
                  finetune=str(finetune) if finetune else None, num_workers=num_workers, checkpoint_every=0,
                  progress=False)
    return from_dict(TrainConfig, values, source=f'{variant} on {subset.dataset}')


def measure_sink(variant: str, timm_model: str, model_kwargs: Dict[str, Any], weights: PathLike, subset: Data,
                 analysis_images: int) -> Tuple[Optional[ModelAnalysis], Dict[str, Any]]:
    """The sink analysis of trained weights on about analysis_images test images of subset (the same number per
    class), and the row fields that report it: sink (summary metrics) and sink_note (why None, if it is)."""
    per_class = max(1, analysis_images // len(subset.classes))
    images = subset.named_test_images(per_class)
    model = create_model(timm_model, len(subset.classes), model_kwargs, checkpoint=weights).eval()
    try:
        analysis = analyze_model(model, images, name=variant)
    except UnsupportedModelError:
        analysis = None
    return analysis, dict(
        sink={k: analysis.metrics['summary'].get(k) for k in SINK_SUMMARY_KEYS} if analysis else None,
        sink_note=None if analysis else f'the analysis cannot read the attention of {timm_model}')


def remeasure_sink(row: Dict[str, Any], subset: Data, run_dir: PathLike) -> Dict[str, Any]:
    """row with its sink fields measured again from the run's saved weights (run_dir/model.safetensors), on the
    same test images as when it was trained; `sink_measured` records when. Training numbers are kept."""
    weights = Path(run_dir) / 'model.safetensors'
    if not weights.is_file():
        raise FileNotFoundError(f'{str(weights)!r} is missing: the run folder of {row["model"]} seed {row["seed"]} '
                                f'on {row["dataset"]} is needed to measure its sink again (or train it again)')
    _, fields = measure_sink(row['model'], row['timm_model'], row['model_kwargs'], weights, subset,
                             row['budget_config']['analysis_images'])
    return dict(row, **fields, sink_measured=datetime.now(timezone.utc).isoformat(timespec='seconds'))


def run_experiment(variant: str, subset: Data, seed: int, budget: Budget, output: PathLike,
                   finetune: Optional[PathLike] = None, num_workers: int = 0) -> RunResult:
    """Train variant on subset (fresh: an unfinished earlier run in output is removed), then measure it.

    The row holds: model, timm_model, model_kwargs, dataset, budget (tag) and budget_config, seed, epochs,
    train_images, test_images, top1, top5, best_top1 (test split of the subset, last and best epoch), params, macs,
    train_seconds, images_per_sec (training, last epoch), sink (the analysis summary on about budget.analysis_images
    test images, the same number per class; or None, with sink_note), finetune, machine, finished (UTC time).
    """
    out = Path(output)
    if out.exists():
        shutil.rmtree(out)
    cfg = train_config(variant, subset, seed, budget, out, finetune, num_workers)
    machine = describe_machine()
    start = time.perf_counter()
    metrics = train(cfg)
    train_seconds = time.perf_counter() - start
    trained_kwargs = dict(cfg.model_kwargs)  # as the trainer built it: layer_scale_init 0 is a model without LayerScale
    if cfg.layer_scale_init is not None:
        trained_kwargs.setdefault('init_values', cfg.layer_scale_init)
    analysis, sink = measure_sink(variant, cfg.model, trained_kwargs, out / 'model.safetensors', subset,
                                  budget.analysis_images)
    model = create_model(cfg.model, len(subset.classes), trained_kwargs).eval()
    row = dict(
        model=variant, timm_model=cfg.model, model_kwargs=cfg.model_kwargs, dataset=subset.dataset,
        budget=budget.tag(), budget_config=budget.to_dict(), seed=seed, epochs=cfg.epochs,
        train_images=subset.num_train, test_images=subset.num_test,
        top1=metrics['val_top1'], top5=metrics['val_top5'], best_top1=metrics['best_val_top1'],
        params=metrics['num_params'], macs=count_macs(model, (3, subset.image_size, subset.image_size)),
        train_seconds=round(train_seconds, 1), images_per_sec=metrics['images_per_sec'],
        **sink,
        finetune=str(finetune) if finetune else None,
        machine=dict(machine, load_1min_end=describe_machine()['load_1min']),
        finished=datetime.now(timezone.utc).isoformat(timespec='seconds'))
    return RunResult(row, analysis, out)
