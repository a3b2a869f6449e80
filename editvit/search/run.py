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

A resume (`resume_search`, `editvit search --resume --output DIR`) reads the run's options from DIR/config.yaml, as
`editvit train --resume` does, continues the training and then searches; a resume of a finished search returns its
result, or searches the trained supernet again if the evolution's options (population, generations, parents,
val_batches) changed or the run was extended (a larger epochs).

SIGINT and SIGTERM stop the search phase before the next member is scored, with one line saying how to resume: the
trained supernet is kept, and the resume searches it again from the start (the search is deterministic, so it finds
the same member). search.json is written atomically, once the search is complete.
"""
import dataclasses
import json
import signal
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional

import torch
import yaml
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch.utils.data import SequentialSampler

from ..data import create_eval_transform, create_loader
from ..errors import ConfigError
from ..threads import one_minute_load, set_threads
from ..train import distributed as D
from ..train.checkpoint import config_for_resume, read_run_config
from ..train.config import check_range, to_dict
from ..train.loop import run_task
from ..train.records import write_json, write_text
from ..train.run_folder import RunFolder
from ..train.stop import RunInterrupted, StopRequest
from ..weights import read_state_dict
from .config import SupernetConfig
from .evolution import SearchResult, evolutionary_search
from .space import Arch, PSViTSearchSpace
from .supernet import SupernetTask, evaluate_member, space_fields, space_from_fields, supernet_datasets

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
    cfg = SupernetConfig(
        space=space_fields(space), dataset=dataset, data_dir=data_dir, budget_macs=budget_macs,
        val_split_per_class=val_split_per_class, synthetic_samples=synthetic_samples, lr=lr, max_steps=max_steps,
        num_workers=num_workers, output=output, resume=resume, overwrite=overwrite, seed=seed, epochs=epochs,
        batch_size=batch_size, checkpoint_every=checkpoint_every, progress=progress, threads=threads,
        population=population, generations=generations, parents=parents, val_batches=val_batches)
    return _start(cfg, space)


def resume_search(output: str, **overrides: Any) -> SearchResult:
    """Continue the search run in `output` with the options it was started with (its config.yaml), as `editvit train
    --resume` does, and return its result.

    Args:
        output: The run folder.
        **overrides: `SupernetConfig` fields given again (`space`: some fields of the search space). Those that would
            change the trained supernet must equal the saved ones (the run loop names any that differ); the
            evolution's options may change, and where things are and how they are shown (data_dir, num_workers,
            threads, progress, checkpoint_every).

    Raises:
        ConfigError: nothing to resume in output, an option outside its range, or one that changes the run.
    """
    _check_options(**{k: v for k, v in overrides.items() if k in _RANGES or k in ('lr', 'seed')})
    if 'space' in overrides:  # a part of the space given again: the rest is the saved one
        saved = read_run_config(output).get('space') or {}
        overrides['space'] = space_fields(space_from_fields({**saved, **overrides['space']}))
    cfg = config_for_resume(output, {**overrides, 'output': output}, SupernetConfig)
    return _start(cfg, space_from_fields(cfg.space))


def _start(cfg: SupernetConfig, space: PSViTSearchSpace) -> SearchResult:
    if cfg.budget_macs is not None and space.macs(space.cheapest()) > cfg.budget_macs:
        raise ConfigError(f'no member fits {cfg.budget_macs:,} MACs; the cheapest needs '
                          f'{space.macs(space.cheapest()):,}')
    if cfg.output is None:
        with tempfile.TemporaryDirectory(prefix='psvit_search_') as tmp:
            return _train_and_search(dataclasses.replace(cfg, output=tmp), space)
    _check_output(Path(cfg.output))
    return _train_and_search(cfg, space)


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


def _train_and_search(cfg: SupernetConfig, space: PSViTSearchSpace) -> SearchResult:
    """Train the supernet in cfg.output (or find it trained), then search it unless its search.json already holds
    a search of this supernet (as many updates: an extended run is searched again) with these evolution options."""
    previous = torch.get_num_threads()
    evolution = {k: getattr(cfg, k) for k in sorted(SupernetConfig.RESUME_FREE_KEYS)}
    try:
        metrics = D.run_distributed(lambda cfg, env: run_task(SupernetTask(cfg), env), cfg)
        used = set_threads(cfg.threads)
        out = Path(cfg.output)
        folder = RunFolder(out)
        folder.lock()
        try:
            done = _read_result(out / RESULT)
            searched = {**evolution, 'supernet_updates': metrics['updates']}
            if cfg.resume and done is not None and done[1] == searched:
                print(f'the search in {str(out)!r} is finished ({RESULT} is written); nothing was changed', flush=True)
                return done[0]
            # the evolution's options of this search, for a resume that gives none
            write_text(out / 'config.yaml', yaml.safe_dump(to_dict(cfg), sort_keys=False))
            with StopRequest() as stop:
                print(f'searching the trained supernet ({metrics["updates"]} updates): population {cfg.population}, '
                      f'{cfg.generations} generations, {cfg.parents} parents', flush=True)
                result = _search(cfg, space, out, stop)
            write_json(out / RESULT, {**result_to_dict(result, space, cfg.budget_macs, metrics['train_loss']),
                                      'search': searched, 'threads': used, 'load': one_minute_load()})
        finally:
            folder.unlock()
    finally:
        torch.set_num_threads(previous)
    return result


def _search(cfg: SupernetConfig, space: PSViTSearchSpace, out: Path, stop: StopRequest) -> SearchResult:
    """The evolutionary search over the members of the trained supernet in out/model.safetensors; RunInterrupted
    before the next member once a signal arrived (a second one stops at once)."""
    _, val_set = supernet_datasets(cfg, space)
    eval_tf = create_eval_transform((space.img_size, space.img_size), IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
    val_loader = create_loader(val_set, eval_tf, SequentialSampler(val_set), cfg.batch_size, cfg.num_workers,
                               seed=cfg.seed)
    supernet = space.build_supernet()
    weights = read_state_dict(out / 'model.safetensors')  # SampledSubnets' weights: the supernet's and its step
    supernet.load_state_dict({k[len('supernet.'):]: v for k, v in weights.items() if k.startswith('supernet.')})
    scored = []

    def score(arch: Arch) -> float:
        if stop.requested is not None:
            raise RunInterrupted(
                f'stopped by {stop.requested} while searching the trained supernet ({len(scored)} members scored); '
                f'the supernet is kept and the search starts again on resume. Resume with: editvit search --resume '
                f'--output {out}', getattr(signal, stop.requested))
        scored.append(evaluate_member(supernet, arch, val_loader, cfg.val_batches))
        return scored[-1]
    return evolutionary_search(space, score, budget_macs=cfg.budget_macs, population=cfg.population,
                               generations=cfg.generations, parents=cfg.parents, seed=cfg.seed)


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
