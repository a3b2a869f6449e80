"""The suite's and the demo's pictures: top-1 per model over seeds, sink metric per model, training curves.

Built with `matplotlib.figure.Figure` (no pyplot, no global backend state), as editvit.analysis.plots does."""
import csv
import itertools
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Union

from matplotlib.figure import Figure

from .aggregate import budget_order

PathLike = Union[str, Path]
DPI = 100


def _save(fig: Figure, path: PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def plot_accuracy(rows: Sequence[Mapping[str, Any]], entries: Sequence[Mapping[str, Any]], path: PathLike) -> Path:
    """One row of panels per (data set, budget): top-1 mean ± std per model as bars with each seed as a dot, and
    the most-attended token's share over the mean of the others (1 = uniform attention, no sink) per model."""
    groups = sorted({(e['dataset'], e['budget']) for e in entries}, key=lambda g: (g[0], budget_order(g[1])))
    fig = Figure(figsize=(11, 3.6 * len(groups)), layout='constrained')
    axes = fig.subplots(len(groups), 2, squeeze=False)
    for (ax_acc, ax_sink), (dataset, budget) in zip(axes, groups):
        mine = sorted((e for e in entries if (e['dataset'], e['budget']) == (dataset, budget)),
                      key=lambda e: -e['top1_mean'])
        names = [e['model'] for e in mine]
        ax_acc.bar(range(len(mine)), [e['top1_mean'] for e in mine], yerr=[e['top1_std'] or 0 for e in mine],
                   color='#8fb3d9', capsize=4)
        seeds = [[r['top1'] for r in rows if (r['dataset'], r['budget'], r['model']) == (dataset, budget, name)]
                 for name in names]
        for i, values in enumerate(seeds):
            ax_acc.plot([i] * len(values), values, 'k.', ms=5)
        ax_acc.set_ylim(max(0, min(min(v) for v in seeds) - 5), None)
        ax_acc.set_xticks(range(len(mine)), names, rotation=30, ha='right')
        ax_acc.set_ylabel('test top-1 (%)')
        ax_acc.set_title(f'{dataset}, {budget}: mean ± std over seeds (dots: seeds)', fontsize=10)
        ratios = [e['mean_max_token_ratio'] for e in mine]
        known = [r for r in ratios if r is not None]
        heights = [r if r is not None else float('nan') for r in ratios]  # n/a (PSViT): no bar, not a 1.0
        ax_sink.bar(range(len(mine)), heights, color='#d99a8f')
        ax_sink.axhline(1.0, color='k', lw=0.8, ls='--')
        if known:
            ax_sink.set_ylim(0.98, max(max(known) * 1.01, 1.05))
        ax_sink.set_xticks(range(len(mine)), [n + ('' if r is not None else '\n(n/a)') for n, r in zip(names, ratios)],
                           rotation=30, ha='right')
        ax_sink.set_ylabel('most-attended token / mean other')
        ax_sink.set_title(f'{dataset}, {budget}: attention concentration (1 = uniform)', fontsize=10)
    return _save(fig, path)


def read_history(run_dir: PathLike) -> Dict[str, list]:
    """The engine's summary.csv of a run as columns of floats."""
    with open(Path(run_dir) / 'summary.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows] for k in rows[0]} if rows else {}


def plot_training(runs: Mapping[str, PathLike], path: PathLike) -> Path:
    """Test top-1 and training loss per epoch of each named run folder."""
    fig = Figure(figsize=(9, 3.4), layout='constrained')
    ax_acc, ax_loss = fig.subplots(1, 2)
    for name, run_dir in runs.items():
        h = read_history(run_dir)
        epochs = [e + 1 for e in h['epoch']]
        ax_acc.plot(epochs, h['val_top1'], 'o-', label=name)
        ax_loss.plot(epochs, h['train_loss'], 'o-', label=name)
    ax_acc.xaxis.get_major_locator().set_params(integer=True)
    ax_loss.xaxis.get_major_locator().set_params(integer=True)
    ax_acc.set(xlabel='epoch', ylabel='test top-1 (%)', title='accuracy')
    ax_loss.set(xlabel='epoch', ylabel='training loss', title='loss')
    ax_acc.legend()
    return _save(fig, path)


def training_hours(history: Mapping[str, list]) -> List[float]:
    """The hours of training after each epoch of a read_history: the epochs' wall time summed."""
    return [seconds / 3600 for seconds in itertools.accumulate(history['epoch_seconds'])]


def plot_accuracy_against_time(groups: Mapping[str, Mapping[str, PathLike]], path: PathLike, layout: str) -> Path:
    """One panel per group (a data set): test top-1 after each epoch against the hours of training so far (the
    epochs' wall time summed, evaluations included), one line per named run folder; layout names what each run
    ran on (the x label)."""
    fig = Figure(figsize=(5.2 * len(groups), 3.8), layout='constrained')
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    for ax, (group, runs) in zip(axes, groups.items()):
        for name, run_dir in runs.items():
            h = read_history(run_dir)
            ax.plot(training_hours(h), h['val_top1'], 'o-', ms=3, label=name)
        ax.set(xlabel=f'hours of training ({layout}, wall time)', ylabel='test top-1 (%)', title=group)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)
