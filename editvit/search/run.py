"""`run_search`: the whole PSViT search at small scale, from a data folder to the best member (the library API
behind `editvit search`).

    from editvit.search import PSViTSearchSpace, run_search
    result = run_search('cifar10', '/data/cifar10', PSViTSearchSpace(), budget_macs=20_000_000, epochs=5)
    model = PSViTSearchSpace().build_subnet(result.best)  # retrain it, e.g. with the training engine

1. train the weight-sharing supernet on the training split, one uniformly sampled member per step;
2. score members by top-1 on a validation split carved from the training images (the test set stays unseen);
3. evolutionary search for the best member within the MACs budget.
"""
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch.utils.data import RandomSampler, SequentialSampler

from ..data import create_dataset, create_eval_transform, create_loader, create_train_transform
from ..errors import ConfigError
from ..threads import one_minute_load, set_threads
from ..train.config import check_range
from ..train.records import write_json
from .evolution import SearchResult, evolutionary_search
from .space import PSViTSearchSpace
from .supernet import evaluate_member, train_supernet


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
        output: Write the result as JSON to this file.
        synthetic_samples: Training images of the 'synthetic' data set.
        threads: torch CPU threads (None: OMP_NUM_THREADS if set, else the idle cores; see `editvit.threads`).

    Raises:
        ConfigError: an option outside its range, or an output that cannot be written (checked before training).
    """
    _check_options(epochs=epochs, batch_size=batch_size, lr=lr, val_split_per_class=val_split_per_class,
                   val_batches=val_batches, population=population, generations=generations, parents=parents,
                   num_workers=num_workers, max_steps=max_steps, synthetic_samples=synthetic_samples,
                   threads=threads, seed=seed)
    if output:
        _check_output(Path(output))
    previous = torch.get_num_threads()
    used = set_threads(threads)
    try:
        result, loss = _search(dataset, data_dir, space, budget_macs, epochs, batch_size, lr, val_split_per_class,
                               val_batches, population, generations, parents, seed, num_workers, max_steps,
                               synthetic_samples)
    finally:
        torch.set_num_threads(previous)
    if output:
        write_json(Path(output), {**result_to_dict(result, space, budget_macs, loss), 'threads': used,
                                  'load': one_minute_load()})
    return result


# the smallest valid value of each option of `run_search` (None: the option's default, always valid; lr: above 0)
_RANGES = dict(epochs=1, batch_size=1, val_split_per_class=0, val_batches=1, population=1, generations=0, parents=1,
               num_workers=0, max_steps=1, synthetic_samples=1, threads=1)


def _check_options(**values: Any) -> None:
    for name, value in values.items():
        if name == 'lr':
            check_range(name, value, {'above': 0})
        elif name == 'seed':
            check_range(name, value, {'at_least': 0, 'at_most': 2**32 - 1})
        else:
            check_range(name, value, {'at_least': _RANGES[name]})


def _check_output(path: Path) -> None:
    """The result file's place, checked before the search spends its time."""
    if path.is_dir():
        raise ConfigError(f'output {str(path)!r} is a folder; give a file name such as {str(path / "search.json")!r}')
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f'cannot create the folder of output {str(path)!r}: {e.strerror} '
                          f'(is a part of the path a file?); choose another --output') from e
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise ConfigError(f'the folder of output {str(path)!r} is not writable; choose another --output')


def _search(dataset, data_dir, space, budget_macs, epochs, batch_size, lr, val_split_per_class, val_batches,
            population, generations, parents, seed, num_workers, max_steps, synthetic_samples):
    """The search of `run_search` once its options are checked: the result and the supernet's final loss."""
    if budget_macs is not None and space.macs(space.cheapest()) > budget_macs:
        raise ValueError(f'no member fits {budget_macs:,} MACs; the cheapest needs {space.macs(space.cheapest()):,}')
    torch.manual_seed(seed)
    common = dict(seed=seed, val_split_per_class=val_split_per_class, num_classes=space.num_classes,
                  image_size=space.img_size, synthetic_samples=synthetic_samples)
    if dataset == 'synthetic':
        common['val_split_per_class'] = 0  # the synthetic set has its own validation split
    train_set = create_dataset(dataset, data_dir, 'train', **common)
    val_set = create_dataset(dataset, data_dir, 'val', **common)
    size = (space.img_size, space.img_size)
    train_tf = create_train_transform(size, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, crop='src',
                                      three_augment=False, color_jitter=None)
    eval_tf = create_eval_transform(size, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
    generator = torch.Generator().manual_seed(seed)
    train_loader = create_loader(train_set, train_tf, RandomSampler(train_set, generator=generator), batch_size,
                                 num_workers, drop_last=True, seed=seed)
    val_loader = create_loader(val_set, eval_tf, SequentialSampler(val_set), batch_size, num_workers, seed=seed)

    supernet = space.build_supernet()
    loss = train_supernet(supernet, space, train_loader, epochs=epochs, lr=lr, budget_macs=budget_macs, seed=seed,
                          max_steps=max_steps)
    result = evolutionary_search(
        space, lambda arch: evaluate_member(supernet, arch, val_loader, val_batches), budget_macs=budget_macs,
        population=population, generations=generations, parents=parents, seed=seed)
    return result, loss


def result_to_dict(result: SearchResult, space: PSViTSearchSpace, budget_macs: Optional[int],
                   supernet_loss: float) -> Dict[str, Any]:
    """The search result as JSON-ready data."""
    return dict(
        space={k: v for k, v in asdict(space).items() if k != 'pairs'}, space_size=space.size,
        budget_macs=budget_macs, supernet_final_loss=supernet_loss,
        best=dict(result.best.to_dict(), top1=result.score, macs=result.macs),
        history=[dict(arch.to_dict(), top1=score, macs=macs) for arch, score, macs in result.history])
