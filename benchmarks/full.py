"""The comparison at full scale: EDIT vs DeiT3 (and the other variants) trained with the small-data recipes
(editvit/configs/cifar10_cpu.yaml, fashion_mnist_cpu.yaml) on the whole training sets, tested on the whole test sets,
several seeds, one torch thread per run; one JSON line per finished run in benchmarks/results/full.jsonl.

    EDITVIT_DATA=~/data nice -n 5 .venv/bin/python benchmarks/full.py --datasets fashion-mnist cifar10 \
        --models edit deit3 --seeds 0 1 2 --jobs 2
    .venv/bin/python benchmarks/full.py --table          # the Markdown table of full.jsonl (pending runs marked)
    .venv/bin/python benchmarks/full.py --table --update-doc benchmarks/SUITE.md    # ... written into SUITE.md
    .venv/bin/python benchmarks/full.py --curves benchmarks/results/full_curves.png  # top-1 against hours, per run
    .venv/bin/python benchmarks/full.py --figures benchmarks/results/full_figures    # sink and Fig. 5 maps per seed

Resumable after any interruption (Ctrl-C, SIGTERM, a reboot): run the same command again. A run with a row in the
results file is skipped; an interrupted run folder (checkpoint-last.pth, no metrics.json) is continued from its last
checkpoint (at most `checkpoint_every` updates are redone); a finished run folder without a row (killed during its
sink analysis) only gets measured. Rows are keyed by model, data set, recipe tag (recipe name, a digest of its values,
epochs) and seed, so rows of another recipe are never taken for these. Data: $EDITVIT_DATA/cifar10 (class folders
train/ and test/), $EDITVIT_DATA/fashion-mnist (the idx files), or --data-dir-*. Run folders: runs/full/ (--work).

--jobs N runs N runs side by side, each in its own process with one thread (two on a 2-core CPU). --processes N
trains each run with N DDP processes (torchrun, gloo, --threads threads each; the recipe's global batch stays the same):
one run at a time on the whole machine, e.g. --processes 2 on a 2-core CPU, as the recipes are timed.
"""
import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from editvit.experiments import VARIANTS, aggregate, append_row, compare, format_table, read_rows
from editvit.experiments.full import FullRun, draw_finished, run_full, run_state
from editvit.experiments.plots import plot_accuracy_against_time, read_history, training_hours
from editvit.train.distributed import launched
from editvit.train.stop import RunInterrupted

RESULTS = Path(__file__).parent / 'results' / 'full.jsonl'
DATASETS = ('fashion-mnist', 'cifar10')
MARKERS = ('<!-- full-table -->', '<!-- /full-table -->')


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--datasets', nargs='+', choices=DATASETS + ('synthetic',), default=list(DATASETS))
    p.add_argument('--models', nargs='+', choices=VARIANTS, default=['edit', 'deit3'])
    p.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    p.add_argument('--set', nargs='*', default=[], metavar='KEY=VALUE',
                   help='override recipe fields (YAML values), e.g. epochs=24; part of the result key')
    p.add_argument('--analysis-images', type=int, default=100, help='test images the sink analysis averages over')
    p.add_argument('--data-dir-cifar10', help='CIFAR-10 folder (default: $EDITVIT_DATA/cifar10)')
    p.add_argument('--data-dir-fashion-mnist', help='Fashion-MNIST folder (default: $EDITVIT_DATA/fashion-mnist)')
    p.add_argument('--synthetic-samples', type=int, help='training images of the synthetic set (tests)')
    p.add_argument('--results', type=Path, default=RESULTS, help=f'JSON-lines file (default: {RESULTS})')
    p.add_argument('--work', type=Path, default=Path('runs/full'), help='run folders (default: runs/full)')
    p.add_argument('--threads', type=int, default=1, help='torch threads per run (default: 1)')
    p.add_argument('--jobs', type=int, default=1, help='runs side by side (default: 1)')
    p.add_argument('--processes', type=int, default=1, help='DDP processes per run, started with torchrun (default: 1; '
                   'part of the result key)')
    p.add_argument('--table', action='store_true', help='print the Markdown table of the results file and exit')
    p.add_argument('--curves', type=Path, metavar='PNG', help='draw test top-1 against hours of training of every '
                   'planned run with a run folder (finished or not) into PNG, print it per epoch, and exit')
    p.add_argument('--figures', type=Path, metavar='DIR', help='analyse the finished runs of each data set and seed '
                   'on the same test images and draw their pictures into DIR/<dataset>-<budget>-s<seed>/, and exit')
    p.add_argument('--update-doc', type=Path, help=f'with --table: also write it between {MARKERS[0]} and '
                                                   f'{MARKERS[1]} in this Markdown file')
    return p.parse_args(argv)


def overrides(pairs: List[str]) -> dict:
    import yaml
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition('=')
        if not sep:
            raise SystemExit(f'--set {pair!r}: expected KEY=VALUE, e.g. epochs=24')
        out[key] = yaml.safe_load(value)
    return out


def planned(args: argparse.Namespace) -> List[FullRun]:
    return [FullRun(m, d, s, overrides=overrides(args.set), processes=args.processes) for d in args.datasets
            for m in args.models for s in args.seeds]


def run_key(row) -> Tuple:
    return row['model'], row['dataset'], row['budget'], row['seed']


def key_of(run: FullRun) -> Tuple:
    return run.variant, run.dataset, run.tag(), run.seed


def run_dir(args: argparse.Namespace, run: FullRun) -> Path:
    return args.work / run.dataset / run.tag() / f'{run.variant}-s{run.seed}'


def data_dir(args: argparse.Namespace, dataset: str) -> Optional[str]:
    return getattr(args, 'data_dir_' + dataset.replace('-', '_'), None)


def table(args: argparse.Namespace) -> str:
    """The aggregate table of the results file, the EDIT-vs-DeiT3 lead, and the planned runs still pending."""
    rows = [r for r in read_rows(args.results) if r.get('scale') == 'full']
    entries = aggregate(rows)
    text = format_table(entries) if rows else '(no finished runs yet)\n'
    lines = []
    for e in entries:
        if e['model'] == 'edit':
            c = compare(entries, 'edit', 'deit3', e['dataset'], e['budget'])
            if c:
                lines.append(f"- {e['dataset']} {e['budget']}: EDIT - DeiT3 = {c['diff']:+.2f} ± {c['se']:.2f} "
                             f"(standard error){' , beyond 2 SE' if c['beyond_2se'] else ', within 2 SE'}")
    timing = [f"- {r['model']} {r['dataset']} seed {r['seed']}: {r['epochs']} epochs, {r['epoch_seconds']:.0f} s per "
              f"epoch, {r['train_seconds'] / 3600:.2f} h, {r.get('processes', 1)} process(es) x {r['threads']} "
              f"thread(s), load {r['load_1min']['start']}-{r['load_1min']['end']}, "
              f"{' then '.join(r.get('sitting_cpus') or [r['machine']['cpu']])}" for r in rows]
    done = {run_key(r) for r in rows}
    pending = [f'| {r.dataset} | {r.tag()} | {r.variant} | seed {r.seed} | pending |' for r in planned(args)
               if key_of(r) not in done]
    out = text + ('\n' + '\n'.join(lines) + '\n' if lines else '') + ('\n' + '\n'.join(timing) + '\n' if timing else '')
    if pending:
        out += '\n| dataset | budget | model | seed | |\n|---|---|---|---|---|\n' + '\n'.join(pending) + '\n'
    return out


def curves(args: argparse.Namespace) -> str:
    """Draw args.curves and return, per run folder, its top-1 after each epoch and the hours of training so far."""
    groups: Dict[str, Dict[str, Path]] = {}
    lines = []
    for run in planned(args):
        folder = run_dir(args, run)
        if not (folder / 'summary.csv').is_file():
            continue
        groups.setdefault(f'{run.dataset} ({run.tag()})', {})[f'{run.variant} seed {run.seed}'] = folder
        h = read_history(folder)
        hours = training_hours(h)
        points = ' / '.join(f'{t:.2f}' for t in h['val_top1'])
        lines.append(f'- {run.dataset} {run.variant} seed {run.seed}: top-1 after epochs 1-{len(hours)}: {points} '
                     f'({hours[-1]:.2f} h, load {h["load"][-1] if "load" in h else "?"})')
    if not groups:
        raise SystemExit(f'no run folder with a summary.csv under {args.work} for the planned runs')
    threads = f'{args.threads} thread' + ('s' if args.threads > 1 else '')
    layout = threads if args.processes == 1 else f'{args.processes} processes of {threads}'
    plot_accuracy_against_time(groups, args.curves, layout)
    return '\n'.join(lines) + '\n'


def figures(args: argparse.Namespace) -> List[Path]:
    """Draw the pictures of the finished planned runs, one folder per data set, recipe and seed."""
    groups: Dict[Tuple[str, str, int], Dict[str, Path]] = {}
    for run in planned(args):
        if run_state(run_dir(args, run)) == 'finished':
            groups.setdefault((run.dataset, run.tag(), run.seed), {})[run.variant] = run_dir(args, run)
    if not groups:
        raise SystemExit(f'no finished run folder under {args.work} for the planned runs')
    return [draw_finished(runs, dataset, args.figures / f'{dataset}-{tag}-s{seed}', data_dir(args, dataset),
                          args.analysis_images, synthetic_samples=args.synthetic_samples)
            for (dataset, tag, seed), runs in groups.items()]


def one(args: argparse.Namespace, run: FullRun) -> None:
    start = time.perf_counter()
    row = run_full(run, run_dir(args, run), data_dir(args, run.dataset), args.analysis_images,
                   args.synthetic_samples)
    if row is None:  # not the first of the run's processes
        return
    append_row(args.results, row)
    sink = row['sink'] or {}
    print(f'{run.variant} {run.dataset} seed {run.seed}: top-1 {row["top1"]:.2f} | {row["epoch_seconds"]:.0f} s/epoch '
          f'| max-token ratio {sink.get("mean_max_token_ratio")} | {time.perf_counter() - start:.0f}s', flush=True)


def child_command(args: argparse.Namespace, run: FullRun) -> List[str]:
    launcher = [sys.executable]
    if args.processes > 1:
        launcher += ['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', str(args.processes)]
    cmd = [*launcher, __file__, '--datasets', run.dataset, '--models', run.variant, '--seeds', str(run.seed),
           '--analysis-images', str(args.analysis_images), '--results', str(args.results), '--work', str(args.work),
           '--threads', str(args.threads), '--jobs', '1', '--processes', str(args.processes), '--set', *args.set]
    if data_dir(args, run.dataset):
        cmd += ['--data-dir-' + run.dataset, data_dir(args, run.dataset)]
    if args.synthetic_samples:
        cmd += ['--synthetic-samples', str(args.synthetic_samples)]
    return cmd


def side_by_side(args: argparse.Namespace, todo: List[FullRun]) -> int:
    """Run todo in up to args.jobs children (each a torchrun of args.processes processes if more than one); SIGTERM /
    Ctrl-C stop them all (they resume next time)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    running: List[subprocess.Popen] = []
    failed = 0

    def stop(signum, frame):
        for p in running:
            p.terminate()
        for p in running:
            p.wait()
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        while todo or running:
            while todo and len(running) < args.jobs:
                running.append(subprocess.Popen(child_command(args, todo.pop(0)), env=env))
            time.sleep(1)
            for p in [p for p in running if p.poll() is not None]:
                running.remove(p)
                failed += p.returncode != 0
    except KeyboardInterrupt:
        stop(signal.SIGINT, None)
    return 1 if failed else 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.curves:
        print(curves(args), end='')
        return 0
    if args.figures:
        for folder in figures(args):
            print(folder)
        return 0
    if args.table:
        text = table(args)
        print(text, end='')
        if args.update_doc:
            doc = args.update_doc.read_text()
            head, start, rest = doc.partition(MARKERS[0])
            _, end, tail = rest.partition(MARKERS[1])
            if not (start and end):
                raise SystemExit(f'{args.update_doc} lacks the markers {MARKERS[0]} ... {MARKERS[1]}')
            args.update_doc.write_text(head + start + '\n' + text + end + tail)
        return 0
    torch.set_num_threads(args.threads)
    done = {run_key(r) for r in read_rows(args.results)}
    todo = []
    first = launched()[0] == 0
    for run in planned(args):
        if key_of(run) not in done:
            todo.append(run)
        elif first:
            print(f'skip {run.variant} {run.dataset} {run.tag()} seed {run.seed}: in {args.results}', flush=True)
    under_torchrun = 'WORLD_SIZE' in os.environ
    if (args.jobs > 1 and len(todo) > 1) or (args.processes > 1 and not under_torchrun and todo):
        return side_by_side(args, todo)
    for run in todo:
        one(args, run)
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except RunInterrupted as e:  # SIGINT / SIGTERM: the run saved its checkpoint; the same command continues it
        print(f'{e}; run the same benchmarks/full.py command again to continue', file=sys.stderr)
        sys.exit(143)
