"""One run of the full-scale comparison: a variant trained with a shipped small-data recipe on a whole training set,
tested on the whole test set, its sink measured, as one result row; resumable after any interruption.

A run folder is in one of three states, and `run_full` carries it to the end from each:

    metrics.json present                          finished: nothing is trained (the row is built from its files)
    checkpoint-last.pth present, no metrics.json  interrupted: continued from its last checkpoint (exact resume)
    anything else                                 not started (or killed before its first checkpoint): started fresh

Unlike the subset suite (editvit.experiments.run) nothing is copied: the engine reads the data set where it lies
(CIFAR-10 class folders, Fashion-MNIST idx files) and its tensor path caches the decoded images.
"""
import csv
import hashlib
import json
import shutil
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import torch

from ..analysis import UnsupportedModelError, analyze_model
from ..analysis.model_spec import ModelSpec, build_model
from ..configs import recipe_path
from ..data import create_dataset
from ..macs import count_macs
from ..models.factory import create_model
from ..train import from_dict, train
from ..train.checkpoint import LAST
from ..train.config import TrainConfig, read_yaml
from ..train.distributed import launched
from .budget import Budget
from .figures import draw_analyses
from .machine import describe_machine
from .run import SINK_SUMMARY_KEYS
from .variants import variant_model
from .whole import first_test_images

PathLike = Union[str, Path]
# the recipe of each data set at full scale (editvit/configs/)
FULL_RECIPES = {'cifar10': 'cifar10_cpu', 'fashion-mnist': 'fashion_mnist_cpu', 'synthetic': 'cifar10_cpu'}


@dataclass(frozen=True)
class FullRun:
    """What defines one full-scale run: variant, data set, the shipped recipe and seed, plus overrides of recipe
    fields (e.g. {'epochs': 24}; tests shrink the model with {'model_kwargs': {...}}) and the number of DDP processes
    that train it (torchrun; the recipe's global batch is the same for any number, but BatchNorm statistics and the
    data each process draws are not, so it is part of the key)."""
    variant: str
    dataset: str
    seed: int
    recipe: str = ''
    overrides: Mapping[str, Any] = field(default_factory=dict)
    processes: int = 1

    def __post_init__(self) -> None:
        if not self.recipe:
            if self.dataset not in FULL_RECIPES:
                raise ValueError(f'no recipe for data set {self.dataset!r}; known: {", ".join(FULL_RECIPES)}')
            object.__setattr__(self, 'recipe', FULL_RECIPES[self.dataset])

    def recipe_values(self) -> Dict[str, Any]:
        return dict(read_yaml(recipe_path(self.recipe)), **self.overrides)

    def tag(self) -> str:
        """The result key's budget: recipe name, a digest of its values with the overrides, the epochs and, for a
        run of several processes, their number, e.g. 'cifar10_cpu-3f2a9c1d-e12' or 'cifar10_cpu-3f2a9c1d-e20-2proc'.
        A changed recipe file or override is a new tag, never an old row."""
        values = {k: _number_or_value(v) for k, v in self.recipe_values().items()}
        digest = hashlib.sha256(repr(sorted((k, repr(v)) for k, v in values.items())).encode()).hexdigest()[:8]
        return f'{self.recipe}-{digest}-e{values["epochs"]}' + (f'-{self.processes}proc' if self.processes > 1 else '')


def _number_or_value(value: Any) -> Any:
    """A number written as a string (YAML reads 1e-3, without a dot, as one) as the float the config makes of it, so
    that lr=1e-3 and lr: 1.0e-3 are one recipe."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def full_config(run: FullRun, output: PathLike, data_dir: Optional[PathLike] = None, resume: bool = False,
                synthetic_samples: Optional[int] = None) -> TrainConfig:
    """The engine config of a run: the recipe with the variant at the recipe's width, depth, heads and patch."""
    values = run.recipe_values()
    size = values['model_kwargs']
    budget = Budget(embed_dim=size['embed_dim'], depth=size['depth'], num_heads=size['num_heads'],
                    patch_size=size['patch_size'], stem=size.get('stem', 'patch'))
    name, kwargs = variant_model(run.variant, budget, size['img_size'])
    values.update(model=name, model_kwargs=kwargs, dataset=run.dataset, data_dir=str(data_dir) if data_dir else None,
                  seed=run.seed, output=str(output), resume=resume, progress=False,
                  num_workers=0)  # one thread per run: no loader worker processes beside it
    if synthetic_samples is not None:
        values['synthetic_samples'] = synthetic_samples
    return from_dict(TrainConfig, values, source=f'{run.variant} with {run.recipe}')


def run_state(output: PathLike) -> str:
    """'finished', 'interrupted' or 'new' (see the module docstring)."""
    out = Path(output)
    if (out / 'metrics.json').is_file():
        return 'finished'
    return 'interrupted' if (out / LAST).is_file() else 'new'


def run_full(run: FullRun, output: PathLike, data_dir: Optional[PathLike] = None, analysis_images: int = 100,
             synthetic_samples: Optional[int] = None, log=print) -> Optional[Dict[str, Any]]:
    """Train (or continue, or just read) the run in output, measure its sink, and return its result row.

    A run of several processes calls this in each process under torchrun: every process trains, only the first
    (RANK 0) measures and returns the row; the others return None.

    The row holds: model, timm_model, model_kwargs, dataset, scale ('full'), recipe, budget (FullRun.tag), overrides,
    recipe_config, seed, epochs, train_images, test_images, top1, top5, best_top1 (whole test set, last and best
    epoch), params, macs, train_seconds (the epochs' wall time summed over every sitting), epoch_seconds (mean per
    epoch), images_per_sec (last epoch), sittings (1 + times continued), sitting_cpus (the CPU model of each sitting,
    once each), processes, threads (per process), load_1min (start and end of the last sitting), sink and sink_note,
    machine (of the last sitting), finished (UTC).
    """
    out = Path(output)
    rank, world_size, _ = launched()
    if world_size != run.processes:
        raise ValueError(f'the run is planned for {run.processes} process(es) but {world_size} run it')
    state = run_state(out)  # every process reads it before the first one changes the folder
    machine = describe_machine()
    sittings_file = out / 'sittings.txt'
    if state != 'finished':
        if rank == 0:
            if state == 'new' and out.exists():
                shutil.rmtree(out)  # killed before its first checkpoint: nothing to keep
            log(f'{"continuing" if state == "interrupted" else "starting"} {run.variant} on {run.dataset} seed '
                f'{run.seed} ({run.tag()}) in {out}')
            out.mkdir(parents=True, exist_ok=True)
            with open(sittings_file, 'a') as f:
                f.write(f'{datetime.now(timezone.utc).isoformat(timespec="seconds")} {state} processes {world_size} '
                        f'threads {torch.get_num_threads()} load {machine["load_1min"]} cpu {machine["cpu"]}\n')
        cfg = full_config(run, out, data_dir, resume=state == 'interrupted', synthetic_samples=synthetic_samples)
        train(cfg)  # the other processes wait for the first in torchrun's rendezvous, after its folder changes
    if rank != 0:
        return None
    cfg = from_dict(TrainConfig, dict(read_yaml(out / 'config.yaml'), resume=False), source=str(out / 'config.yaml'))
    metrics = json.loads((out / 'metrics.json').read_text())
    with open(out / 'summary.csv', newline='') as f:
        history = list(csv.DictReader(f))
    per_class = max(1, analysis_images // metrics['num_classes'])
    images = first_test_images(run.dataset, data_dir, per_class, cfg.seed, cfg.synthetic_samples)
    n_test = len(create_dataset(run.dataset, str(data_dir) if data_dir else None, 'val', seed=cfg.seed,
                                synthetic_samples=cfg.synthetic_samples))
    model = create_model(cfg.model, metrics['num_classes'], cfg.model_kwargs, layer_scale_init=cfg.layer_scale_init,
                         checkpoint=out / 'model.safetensors').eval()
    try:
        analysis = analyze_model(model, images, name=run.variant)
    except UnsupportedModelError:
        analysis = None
    img_size = cfg.model_kwargs['img_size']
    sitting_lines = sittings_file.read_text().splitlines() if sittings_file.is_file() else []
    # the CPU of each sitting, in order, once each: a run continued on another machine names both
    sitting_cpus = list(dict.fromkeys(line.partition(' cpu ')[2] for line in sitting_lines if ' cpu ' in line))
    epoch_seconds = [float(r['epoch_seconds']) for r in history]
    n_train = len(create_dataset(run.dataset, str(data_dir) if data_dir else None, 'train', seed=cfg.seed,
                                 synthetic_samples=cfg.synthetic_samples))
    return dict(
        model=run.variant, timm_model=cfg.model, model_kwargs=cfg.model_kwargs, dataset=run.dataset, scale='full',
        recipe=run.recipe, budget=run.tag(), overrides=dict(run.overrides), recipe_config=run.recipe_values(),
        seed=run.seed, epochs=cfg.epochs, train_images=n_train, test_images=n_test,
        top1=metrics['val_top1'], top5=metrics['val_top5'], best_top1=metrics['best_val_top1'],
        params=metrics['num_params'], macs=count_macs(model, (3, img_size, img_size)),
        train_seconds=round(sum(epoch_seconds), 1), epoch_seconds=round(statistics.fmean(epoch_seconds), 1),
        images_per_sec=metrics['images_per_sec'], sittings=max(1, len(sitting_lines)),
        sitting_cpus=sitting_cpus or [machine['cpu']], processes=world_size,
        threads=torch.get_num_threads(),
        load_1min=dict(start=machine['load_1min'], end=describe_machine()['load_1min']),
        sink={k: analysis.metrics['summary'].get(k) for k in SINK_SUMMARY_KEYS} if analysis else None,
        sink_note=None if analysis else f'the analysis cannot read the attention of {cfg.model}',
        machine=machine, finished=datetime.now(timezone.utc).isoformat(timespec='seconds'))


def draw_finished(runs: Mapping[str, PathLike], dataset: str, output: PathLike, data_dir: Optional[PathLike] = None,
                  analysis_images: int = 100, maps: int = 4, synthetic_samples: Optional[int] = None) -> Path:
    """Analyse the finished runs (name -> run folder) on the same first test images of every class and draw their
    pictures into output (`figures.draw_analyses`: Fig. 1a, 1b and the Fig. 5 maps of the first `maps` classes)."""
    data = create_dataset(dataset, str(data_dir) if data_dir else None, 'val',
                          synthetic_samples=synthetic_samples or 256)
    per_class = max(1, analysis_images // len(data.classes))
    images = first_test_images(dataset, data_dir, per_class, synthetic_samples=synthetic_samples or 256)
    analyses = []
    for name, folder in runs.items():
        model, _ = build_model(ModelSpec.from_run(folder))
        analyses.append(analyze_model(model, images, name=name))
    return draw_analyses(analyses, data.classes, per_class, output, maps)
