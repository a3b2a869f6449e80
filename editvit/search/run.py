"""`run_search`: the whole PSViT search at small scale, from a data folder to the best member (the library API
behind `editvit search`).

    from editvit.search import PSViTSearchSpace, run_search
    result = run_search('cifar10', '/data/cifar10', PSViTSearchSpace(), budget_macs=20_000_000, epochs=5)
    model = PSViTSearchSpace().build_subnet(result.best)  # retrain it, e.g. with the training engine

1. train the weight-sharing supernet on the training split, one uniformly sampled member per step (a run of the
   run loop, `SupernetTask`: run folder, checkpoints, exact resume, clean stops, summary.csv, training.png);
2. score members by top-1 on a validation split carved from the training images (the test set stays unseen);
3. evolutionary search for the best member within the MACs budget, written to the run folder:

    DIR/search.json   the space, the best member, every member scored, and the evolution's options

A resume continues the training and then searches; a resume of a finished search returns its result, or searches the
trained supernet again if the evolution's options (population, generations, parents, val_batches) changed or the run
was extended (a larger epochs).
"""
import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch.utils.data import SequentialSampler

from ..data import create_eval_transform, create_loader
from ..errors import ConfigError
from ..threads import one_minute_load, set_threads
from ..train import distributed as D
from ..train.config import check_range
from ..train.loop import run_task
from ..train.records import write_json
from ..train.run_folder import RunFolder
from ..weights import read_state_dict
from .config import SupernetConfig
from .evolution import SearchResult, evolutionary_search
from .space import Arch, PSViTSearchSpace
from .supernet import SupernetTask, evaluate_member, space_fields, supernet_datasets

RESULT = 'search.json'


def run_search(
        dataset: str,
        data_dir: Optional[str],
        space: PSViTSearchSpace = PSViTSearchSpace(),
        budget_macs: Optional[int] = None,
        epochs: int = 5,
        batch_size: int = 128,
        lr: float = 1e-3,
        val_split_per_class: int = 100,
        val_batches: Optional[int] = None,
        population: int = 16,
        generations: int = 4,
        parents: int = 4,
        seed: int = 0,
        num_workers: int = 2,
        max_steps: Optional[int] = None,
        output: Optional[str] = None,
        synthetic_samples: int = 256,
        threads: Optional[int] = None,
        resume: bool = False,
        overwrite: bool = False,
        checkpoint_every: int = 0,
        progress: bool = True,
) -> SearchResult:
    """Train a supernet over `space` on `dataset` and return the best member within `budget_macs`.

    Args:
        dataset: A name of `editvit.data.DATASETS` ('cifar10' reads JPEG class folders train/<class>/*.jpg or
            torchvision's batches; 'synthetic' needs no data).
        data_dir: The data folder (None: $EDITVIT_DATA/<dataset>).
        space: The search space (its image size and classes must fit the data).
        budget_macs: Largest MACs per image of the searched member (None: no budget).
        epochs: Supernet training epochs.
        batch_size: Batch size of training and scoring.
        lr: Peak AdamW learning rate of the supernet.
        val_split_per_class: Training images per class held out to score members.
        val_batches: Score each member on at most this many validation batches (None: all).
        population: Members per generation of the evolutionary search.
        generations: Generations (0: random search).
        parents: Members kept per generation.
        seed: Seed of the weights, the data order, the sampling and the search.
        num_workers: Data-loading processes.
        max_steps: Stop supernet training after this many steps (None: all epochs).
        output: The run folder (None: a temporary one, removed afterwards).
        synthetic_samples: Training images of the 'synthetic' data set.
        threads: torch CPU threads (None: OMP_NUM_THREADS if set, else the idle cores; see `editvit.threads`).
        resume: Continue the run in output (see the module docstring).
        overwrite: Replace the results of an earlier run in output.
        checkpoint_every: Also checkpoint every N updates within an epoch (0: at epoch ends only).
        progress: Show a progress bar.

    Raises:
        ConfigError: an option outside its range, or an output that cannot be used (checked before training).
    """
    _check_options(epochs=epochs, batch_size=batch_size, lr=lr, val_split_per_class=val_split_per_class,
                   val_batches=val_batches, population=population, generations=generations, parents=parents,
                   num_workers=num_workers, max_steps=max_steps, synthetic_samples=synthetic_samples,
                   threads=threads, checkpoint_every=checkpoint_every, seed=seed)
    if budget_macs is not None and space.macs(space.cheapest()) > budget_macs:
        raise ConfigError(f'no member fits {budget_macs:,} MACs; the cheapest needs {space.macs(space.cheapest()):,}')
    cfg = SupernetConfig(
        space=space_fields(space), dataset=dataset, data_dir=data_dir, budget_macs=budget_macs,
        val_split_per_class=val_split_per_class, synthetic_samples=synthetic_samples, lr=lr, max_steps=max_steps,
        num_workers=num_workers, output=output, resume=resume, overwrite=overwrite, seed=seed, epochs=epochs,
        batch_size=batch_size, checkpoint_every=checkpoint_every, progress=progress, threads=threads)
    evolution = dict(population=population, generations=generations, parents=parents, val_batches=val_batches)
    if output is None:
        with tempfile.TemporaryDirectory(prefix='psvit_search_') as tmp:
            return _train_and_search(dataclasses.replace(cfg, output=tmp), space, evolution)
    _check_output(Path(output))
    return _train_and_search(cfg, space, evolution)


# the smallest valid value of each option of `run_search` (None: the option's default, always valid; lr: above 0)
_RANGES = dict(epochs=1, batch_size=1, val_split_per_class=0, val_batches=1, population=1, generations=0, parents=1,
               num_workers=0, max_steps=1, synthetic_samples=1, threads=1, checkpoint_every=0)


def _check_options(**values: Any) -> None:
    for name, value in values.items():
        if name == 'lr':
            check_range(name, value, {'above': 0})
        elif name == 'seed':
            check_range(name, value, {'at_least': 0, 'at_most': 2**32 - 1})
        else:
            check_range(name, value, {'at_least': _RANGES[name]})


def _check_output(path: Path) -> None:
    """The run folder's place, checked before the search spends its time (the run loop checks the rest)."""
    if path.is_file() and path.suffix == '.json':
        raise ConfigError(f'output {str(path)!r} is a JSON file: --output is now a run folder (the result is written '
                          f'to DIR/{RESULT}); give a folder such as {str(path.with_suffix(""))!r}')


def _train_and_search(cfg: SupernetConfig, space: PSViTSearchSpace, evolution: Dict[str, Any]) -> SearchResult:
    """Train the supernet in cfg.output (or find it trained), then search it unless its search.json already holds
    a search of this supernet (as many updates: an extended run is searched again) with these evolution options."""
    previous = torch.get_num_threads()
    try:
        metrics = D.run_distributed(lambda cfg, env: run_task(SupernetTask(cfg), env), cfg)
        used = set_threads(cfg.threads)
        out = Path(cfg.output)
        folder = RunFolder(out)
        folder.lock()
        try:
            done = _read_result(out / RESULT)
            if cfg.resume and done is not None and done[1] == {**evolution, 'supernet_updates': metrics['updates']}:
                print(f'the search in {str(out)!r} is finished ({RESULT} is written); nothing was changed', flush=True)
                return done[0]
            result = _search(cfg, space, evolution, out)
            write_json(out / RESULT, {**result_to_dict(result, space, cfg.budget_macs, metrics['train_loss']),
                                      'search': {**evolution, 'supernet_updates': metrics['updates']},
                                      'threads': used, 'load': one_minute_load()})
        finally:
            folder.unlock()
    finally:
        torch.set_num_threads(previous)
    return result


def _search(cfg: SupernetConfig, space: PSViTSearchSpace, evolution: Dict[str, Any], out: Path) -> SearchResult:
    """The evolutionary search over the members of the trained supernet in out/model.safetensors."""
    _, val_set = supernet_datasets(cfg, space)
    eval_tf = create_eval_transform((space.img_size, space.img_size), IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
    val_loader = create_loader(val_set, eval_tf, SequentialSampler(val_set), cfg.batch_size, cfg.num_workers,
                               seed=cfg.seed)
    supernet = space.build_supernet()
    weights = read_state_dict(out / 'model.safetensors')  # SampledSubnets' weights: the supernet's and its step
    supernet.load_state_dict({k[len('supernet.'):]: v for k, v in weights.items() if k.startswith('supernet.')})
    val_batches = evolution['val_batches']
    return evolutionary_search(
        space, lambda arch: evaluate_member(supernet, arch, val_loader, val_batches), budget_macs=cfg.budget_macs,
        population=evolution['population'], generations=evolution['generations'], parents=evolution['parents'],
        seed=cfg.seed)


def _read_result(path: Path):
    """The result in a search.json and what it was searched with (evolution options, supernet updates); None if
    there is none."""
    if not path.is_file():
        return None
    data = json.loads(path.read_text())

    def arch(row: Dict[str, Any]) -> Arch:
        return Arch(tuple(row['num_tokens']), tuple(row['share_attention']))
    best = data['best']
    history = [(arch(row), row['top1'], row['macs']) for row in data['history']]
    return SearchResult(arch(best), best['top1'], best['macs'], history), data['search']


def result_to_dict(result: SearchResult, space: PSViTSearchSpace, budget_macs: Optional[int],
                   supernet_loss: float) -> Dict[str, Any]:
    """The search result as JSON-ready data."""
    return dict(
        space=space_fields(space), space_size=space.size,
        budget_macs=budget_macs, supernet_final_loss=supernet_loss,
        best=dict(result.best.to_dict(), top1=result.score, macs=result.macs),
        history=[dict(arch.to_dict(), top1=score, macs=macs) for arch, score, macs in result.history])
