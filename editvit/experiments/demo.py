"""`editvit demo` / `make demo`: a small EDIT and a DeiT3 of the same width and depth trained on CIFAR-10 (all 50,000
training images, read where they lie; or a subset), evaluated on the test set, their attention sinks measured and
their sequential maps drawn on test images, in one report folder.

    OUT/README.md              the table and what it says
    OUT/results.jsonl          one result row per model (the suite's format)
    OUT/training.png           test top-1 and training loss per epoch
    OUT/analysis/              metrics.json / metrics.csv, attention_sink.png (Fig. 1a), attention_blocks.png
                               (Fig. 1b), maps/<image>.png (Fig. 5) for both models on the same test images
    OUT/runs/<model>/          the engine's run folders (weights, summary.csv, log.txt)
"""
import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

import torch

from ..threads import choose_threads, pinned_threads, set_threads
from .aggregate import aggregate, format_table
from .budget import Budget
from .figures import draw_analyses
from .locate_cifar10 import locate_data
from .machine import describe_machine
from .plots import plot_training
from .results import append_row
from .run import RunResult, run_experiment
from .subset import make_subset
from .whole import whole_dataset

PathLike = Union[str, Path]
_STEMS = {'patch': '', 'conv': ' from the convolutional stem'}
# the CIFAR-10 recipe (configs/cifar10_cpu.yaml: AdamW, cosine, crop + flip, the convolutional stem) on a 64-wide,
# 4-deep model, 3 epochs of all 50,000 training images at batch 64 (2,343 updates per model); the measured top-1 and
# time are in BENCHMARKS.md, "The demo"
DEMO_BUDGET = Budget(embed_dim=64, depth=4, num_heads=2, patch_size=4, stem='conv', epochs=3, warmup_epochs=0.3,
                     batch_size=64, lr=2e-3, analysis_images=40)
DEMO_TRAIN_PER_CLASS = None  # None: the whole training set (and the whole test set)
DEMO_TEST_PER_CLASS = 100
DEMO_MODELS = ('edit', 'deit3')
# how far the demo is from the full-scale runs (update with their measured rows)
FULL_SCALE = ('The full-scale comparison (benchmarks/full.py: 128 wide, 6 deep, 22 epochs of this recipe at a batch '
              'of 32, ~2 h 15 min per run on two CPU cores, 3 seeds; benchmarks/SUITE.md) aims at 80% top-1 on '
              'CIFAR-10, 75% at least; DeiT3 reached 76.60% there (seed 0).')


@dataclass
class DemoReport:
    output: Path
    results: List[RunResult]
    summary: str
    seconds: float


def _summary(results: List[RunResult], seconds: float) -> str:
    rows = {r.row['model']: r.row for r in results}
    first = next(iter(rows.values()))
    lines = [f'EDIT vs DeiT3 on {first["dataset"]} ({first["train_images"]} training images, {first["test_images"]} '
             f'test images, one seed, {seconds / 60:.1f} min)']
    for name, row in rows.items():
        s = row['sink'] or {}
        sink = f"[CLS] sink ratio {s['mean_sink_ratio']:.2f}, " if s.get('mean_sink_ratio') is not None else ''
        entropy = (f", [CLS]-query entropy layer 1 -> {row['budget_config']['depth']}: "
                   f"{s['cls_query_entropy_first']:.2f} -> {s['cls_query_entropy_last']:.2f}"
                   if s.get('cls_query_entropy_first') is not None else '')
        lines.append(f"  {name:6s} top-1 {row['top1']:.2f}%  top-5 {row['top5']:.2f}%  {row['params'] / 1e3:.0f}k "
                     f"params  {row['images_per_sec']:.0f} img/s | {sink}most-attended token / other "
                     f"{s.get('mean_max_token_ratio', float('nan')):.2f}, sink rate (> 10/N) "
                     f"{s.get('token_sink_rate', float('nan')):.2f}{entropy}")
    if 'edit' in rows and 'deit3' in rows:
        diff = rows['edit']['top1'] - rows['deit3']['top1']
        lines.append(f'  EDIT - DeiT3: {diff:+.2f} points top-1 from a single seed. The full-scale comparison '
                     f'(benchmarks/full.py) measures the seed spread, which a difference must exceed to mean much.')
    lines.append('  ' + FULL_SCALE)
    return '\n'.join(lines)


def _readme(results: List[RunResult], summary: str, budget: Budget, seconds: float) -> str:
    row = results[0].row
    machine = row['machine']
    return f"""# editvit demo: EDIT vs DeiT3 on CIFAR-10

```
{summary}
```

{format_table(aggregate(r.row for r in results))}
Budget `{budget.tag()}`: width {budget.embed_dim}, depth {budget.depth}, {budget.num_heads} heads, patch
{budget.patch_size} ({(row['model_kwargs']['img_size'] // budget.patch_size) ** 2} patch tokens{_STEMS[budget.stem]}),
{budget.epochs} epochs over {row['train_images']} training images, tested on {row['test_images']} test images, fp32.
Sink metrics on
{results[0].analysis.metrics['num_images'] if results[0].analysis else 0} test images (definitions:
editvit/analysis/sink_measures.py). Machine: {machine['cpu']} ({', '.join(machine['cpu_flags']) or 'no AVX2'}),
{machine['cores']} cores, load {machine['load_1min']}; GPU: {machine['gpu'] or 'none'}. Took {seconds / 60:.1f} min.

- `training.png`: test top-1 and training loss per epoch.
- `analysis/attention_sink.png`: attention to [CLS] vs to the other tokens per layer (paper Fig. 1a).
- `analysis/attention_blocks.png`: the top-left block of every layer's attention (Fig. 1b).
- `analysis/maps/*.png`: the sequential attention maps of test images, layer by layer (Fig. 5).
- `analysis/metrics.json`, `metrics.csv`: every number behind the pictures, per layer and head.
- `results.jsonl`: the result rows (the suite's format).

A demo, not a result: one seed and a few minutes of training. {FULL_SCALE}
"""


def demo_processes(threads: Optional[int] = None) -> Tuple[int, int]:
    """(processes, threads each) for the demo's two models: side by side, half the threads each, when there are two
    threads or more (`threads`, OMP_NUM_THREADS or the idle cores); not pinned, also side by side with one thread
    each on a machine of two or more cores with fewer idle (see `run_demo`)."""
    total = choose_threads(threads)
    n = len(DEMO_MODELS)
    if total >= n or (pinned_threads(threads) is None and (os.cpu_count() or 1) >= n):
        return n, max(1, total // n)
    return 1, total


def _train(variant: str, subset, seed: int, budget: Budget, output: Path, threads: int) -> RunResult:
    """run_experiment in a process of its own (the demo's models side by side)."""
    torch.set_num_threads(threads)
    return run_experiment(variant, subset, seed, budget, output)


def run_demo(output: PathLike = 'runs/demo', data_dir: Optional[PathLike] = None, budget: Budget = DEMO_BUDGET,
             train_per_class: Optional[int] = DEMO_TRAIN_PER_CLASS, test_per_class: int = DEMO_TEST_PER_CLASS,
             dataset: str = 'cifar10', download_root: Optional[PathLike] = None, seed: int = 0, maps: int = 4,
             threads: Optional[int] = None, log: Callable[[str], None] = print) -> DemoReport:
    """Train EDIT and DeiT3 at budget on CIFAR-10 (or a subset), evaluate, analyse and write the report folder output.

    Args:
        output: Report folder (replaced, except its data/ cache of subsets).
        data_dir: CIFAR-10 folder; None: $EDITVIT_DATA/cifar10, else torchvision's download (see `locate_data`).
        train_per_class, test_per_class: The subset to train and test on (written once as PNGs to OUT/data/);
            train_per_class None: the whole data set, read where it lies.
        dataset: 'cifar10', or 'synthetic' (no data needed; for tests).
        maps: Test images to draw the sequential maps of.
        threads: torch CPU threads in all (None: OMP_NUM_THREADS if set, else the idle cores; see
            `editvit.threads`); with two or more, the two models train side by side in two processes, half the
            threads each. Not given, they also train side by side with one thread each on a machine of two or more
            cores that has fewer idle: single-thread processes lose nothing to OpenMP's spin-waiting, and the
            1-minute load lags (just after `make demo`'s install it still counts the install).
    """
    start = time.perf_counter()
    out = Path(output)
    root = locate_data(data_dir, download_root) if dataset != 'synthetic' else None
    for stale in ('runs', 'analysis', 'results.jsonl', 'README.md', 'training.png'):
        path = out / stale
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    if train_per_class is None:
        log(f'data: {root or dataset}, the whole training and test sets')
        subset = whole_dataset(dataset, root)
    else:
        log(f'data: {root or dataset}; writing the {train_per_class} + {test_per_class} images per class subset')
        subset = make_subset(dataset, root, out / 'data' / f'{dataset}-{train_per_class}-{test_per_class}',
                             train_per_class, test_per_class)
    previous_threads = torch.get_num_threads()
    processes, each = demo_processes(threads)
    cores = set_threads(threads)  # this process's: the sequential training, the analysis
    try:
        log(f'machine: {describe_machine()}')
        if processes > 1:  # side by side, a process each: small models scale badly over threads, so this is
            # faster than one model after the other on all cores
            log(f'training {" and ".join(DEMO_MODELS)} ({budget.tag()}) side by side, {each} thread(s) each ...')
            with ProcessPoolExecutor(len(DEMO_MODELS), mp_context=multiprocessing.get_context('spawn')) as pool:
                futures = [pool.submit(_train, variant, subset, seed, budget, out / 'runs' / variant,
                                       each) for variant in DEMO_MODELS]
                results = [f.result() for f in futures]
        else:
            results = []
            for variant in DEMO_MODELS:
                log(f'training {variant} ({budget.tag()}) on {cores} thread(s) ...')
                results.append(run_experiment(variant, subset, seed, budget, out / 'runs' / variant))
        for result in results:
            append_row(out / 'results.jsonl', result.row)
            log(f'  {result.row["model"]}: top-1 {result.row["top1"]:.2f}% in {result.row["train_seconds"]:.0f}s')
        draw_analyses([r.analysis for r in results], subset.classes,
                      max(1, budget.analysis_images // len(subset.classes)), out / 'analysis', maps)
        runs: Dict[str, Path] = {r.row['model']: r.run_dir for r in results}
        plot_training(runs, out / 'training.png')
        seconds = time.perf_counter() - start
        summary = _summary(results, seconds)
        (out / 'README.md').write_text(_readme(results, summary, budget, seconds))
    finally:
        torch.set_num_threads(previous_threads)
    return DemoReport(out, results, summary, seconds)
