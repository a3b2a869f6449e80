"""Training images per second of five ways to train the same model, measured side by side in one run.

    (a) pil     editvit's PIL path: ImageFolder data set, per-image transforms, DataLoader with --workers workers
    (b) tensor  editvit's tensor path: the set decoded once into uint8, whole batches augmented with kornia
    (c) timm    timm's own train.py (--timm-train PATH) as a subprocess on the same folder and options
    (d) limit   a plain loop on the pre-decoded uint8 tensor with the cheapest batched crop and flip, no DataLoader
    (e) editvit `editvit train` itself as a subprocess on the same folder and options (the tensor path, the run loop
                with its checkpoints, logs and evaluation; its engine's training images/s of the last epoch)

(a), (b) and (d) run the same minimal loop (forward, label-smoothed cross-entropy, backward, clip, LAMB step), so
they differ only in how batches are made; (c) is timm's full loop. All use the configs/cifar10_cpu.yaml EDIT (96
wide, 6 layers, 3 heads, patch 4, 32x32), batch 128, random resized crop, flip, 3-Augment, colour jitter 0.3 (timm's
train.py has no DeiT3 simple random crop, so every contender uses the random resized crop). Each measurement is one
whole epoch over a balanced CIFAR-10 subset (what timm's train.py reports too: its epoch average includes the
epoch's start). The PIL path, the tensor/limit pair and timm take turns, in reversed order every other round; within
the pair, the tensor path and the limit alternate batch by batch, so their ratio is measured under the same load.

timm's pip package does not ship train.py: take it from a clone of huggingface/pytorch-image-models (the numbers in
BENCHMARKS.md used commit aa4b5850c1543fa488abf260f18390eda46cf85d, which runs unchanged against timm 1.0.31) and
pass its path, or set $TIMM_TRAIN; it runs after `import editvit`, so the EDIT models are registered with timm.

    git clone https://github.com/huggingface/pytorch-image-models ~/src/timm
    OMP_NUM_THREADS=1 python benchmarks/train_speed.py --data-dir ~/data/cifar10 --timm-train ~/src/timm/train.py \
        --threads 1 --rounds 2
"""
import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn
from timm.data import resolve_model_data_config
from timm.loss import LabelSmoothingCrossEntropy
from timm.optim import Lamb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from editvit.data import AugmentOptions, create_dataset, create_loader, create_train_sampler  # noqa: E402
from editvit.data import create_train_transform  # noqa: E402
from editvit.data.decoded import decode_dataset  # noqa: E402
from editvit.data.tensor_loader import create_train_batches  # noqa: E402
from editvit.models.factory import create_model  # noqa: E402

MODEL = 'edit_tiny_patch16_224'
MODEL_KWARGS = dict(img_size=32, patch_size=4, embed_dim=96, depth=6, num_heads=3)
CONTENDERS = ('pil', 'tensor', 'timm', 'limit', 'editvit')
LABELS = dict(pil='(a) PIL loop', tensor='(b) tensor loop', timm='(c) timm train.py', limit='(d) limit',
              editvit='(e) editvit train')


def make_subset(source: Path, dest: Path, per_class: int, val_per_class: int) -> Path:
    """dest/train/<class>/ with the first per_class images of each class of source/train (sorted by name), and
    dest/val/<class>/ with the next val_per_class, as symbolic links."""
    for split, lo, hi in (('train', 0, per_class), ('val', per_class, per_class + val_per_class)):
        for class_dir in sorted(p for p in (source / 'train').iterdir() if p.is_dir()):
            out = dest / split / class_dir.name
            out.mkdir(parents=True, exist_ok=True)
            for f in sorted(class_dir.iterdir())[lo:hi]:
                if not (out / f.name).exists():
                    (out / f.name).symlink_to(f.resolve())
    return dest


def new_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return create_model(MODEL, 10, MODEL_KWARGS, drop_path=0.05)


def train_epochs(batches: dict, steps: int) -> dict:
    """Images per second of the minimal loop on a new model for each of `batches` (name -> batch iterator), one
    epoch of `steps` batches each. With several, they take turns batch by batch, so load changes hit them alike;
    each is timed over its own steps only."""
    loss_fn = LabelSmoothingCrossEntropy(0.1)
    runs = {}
    for name, it in batches.items():
        model = new_model()
        model.train()
        runs[name] = dict(model=model, it=iter(it), seen=0, seconds=0., data_seconds=0.,
                          optimizer=Lamb(model.parameters(), lr=2e-3, weight_decay=0.05))
    for _ in range(steps):
        for run in runs.values():
            start = time.perf_counter()
            images, labels, _ = next(run['it'])
            run['data_seconds'] += time.perf_counter() - start
            loss = loss_fn(run['model'](images), labels)
            run['optimizer'].zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(run['model'].parameters(), 1.0)
            run['optimizer'].step()
            run['seconds'] += time.perf_counter() - start
            run['seen'] += len(labels)
    for name, run in runs.items():
        print(f'  {name}: {run["data_seconds"] / steps * 1000:.0f} ms of {run["seconds"] / steps * 1000:.0f} ms per '
              f'batch making the batch')
    return {name: run['seen'] / run['seconds'] for name, run in runs.items()}


def limit_batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int, mean, std, seed: int):
    """The cheapest batched augmentation: one random 32x32 window of the 4-pixel reflect-padded batch, a random
    horizontal flip per image, normalisation."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=g)
    mean = torch.tensor(mean).view(1, 3, 1, 1) * 255
    std = torch.tensor(std).view(1, 3, 1, 1) * 255
    for first in range(0, len(order) - batch_size + 1, batch_size):
        idx = order[first:first + batch_size]
        x = nn.functional.pad(images[idx].float(), (4, 4, 4, 4), mode='reflect')  # (B, 3, 40, 40)
        i, j = torch.randint(0, 9, (2,), generator=g).tolist()
        x = x[:, :, i:i + 32, j:j + 32]  # (B, 3, 32, 32)
        flip = torch.rand(len(idx), generator=g) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        yield (x - mean) / std, labels[idx], 0


def run_timm(script: Path, root: Path, out: Path, threads: int, workers: int, batch_size: int,
             epochs: int) -> float:
    """timm train.py's average images/s over its last epoch."""
    kwargs = ' '.join(f'{k}={v}' for k, v in MODEL_KWARGS.items())
    argv = [str(script), '--data-dir', str(root), '--train-split', 'train', '--val-split', 'val',
            '--model', MODEL, '--model-kwargs', *kwargs.split(), '--num-classes', '10', '--input-size', '3', '32', '32',
            '--batch-size', str(batch_size), '--opt', 'lamb', '--lr', '2e-3', '--weight-decay', '0.05',
            '--sched', 'cosine', '--epochs', str(epochs), '--warmup-epochs', '0', '--smoothing', '0.1',
            '--drop-path', '0.05', '--clip-grad', '1.0', '--aa', '3a', '--color-jitter', '0.3', '--hflip', '0.5',
            '--train-interpolation', 'bicubic', '--mixup', '0', '--cutmix', '0', '--reprob', '0',
            '-j', str(workers), '--device', 'cpu', '--log-interval', '1000', '--checkpoint-hist', '1',
            '--output', str(out), '--seed', '0']
    code = ('import runpy, sys, editvit; sys.argv = ' + repr(argv) + '; '
            "runpy.run_path(sys.argv[0], run_name='__main__')")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    proc = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True)
    text = proc.stdout + proc.stderr
    rates = re.findall(r'Train: (\d+) \[.*?\(\s*[\d.]+s,\s*([\d.]+)/s\)', text)
    if proc.returncode != 0 or not rates:
        raise RuntimeError(f'timm train.py failed (exit {proc.returncode}):\n{text[-3000:]}')
    last = max(int(e) for e, _ in rates)
    return float([r for e, r in rates if int(e) == last][-1])


def run_editvit(root: Path, out: Path, threads: int, batch_size: int, epochs: int) -> float:
    """`editvit train`'s training images/s over its last epoch (summary.csv's images_per_sec)."""
    kwargs = [f'{k}={v}' for k, v in MODEL_KWARGS.items()]
    argv = ['-m', 'editvit', 'train', '--model', MODEL, '--model-kwargs', *kwargs, '--dataset', 'imagefolder',
            '--data-dir', str(root), '--num-classes', '10', '--batch-size', str(batch_size), '--optimizer', 'lamb',
            '--lr', '2e-3', '--lr-base-batch', str(batch_size), '--weight-decay', '0.05', '--epochs', str(epochs),
            '--warmup-epochs', '0', '--smoothing', '0.1', '--drop-path', '0.05', '--clip-grad', '1.0', '--crop', 'rrc',
            '--three-augment', '--color-jitter', '0.3', '--hflip', '0.5', '--mixup', '0', '--cutmix', '0',
            '--data-path', 'tensor', '--num-workers', '1', '--device', 'cpu', '--threads', str(threads),
            '--checkpoint-every', '0', '--no-progress', '--seed', '0', '--output', str(out), '--overwrite']
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    proc = subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f'editvit train failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}')
    rows = list(csv.DictReader(open(out / 'summary.csv')))
    return float(rows[-1]['images_per_sec'])


def cpu_line() -> str:
    model = next((line.split(':', 1)[1].strip() for line in open('/proc/cpuinfo') if line.startswith('model name')),
                 'unknown CPU')
    flags = open('/proc/cpuinfo').read()
    return f'{model}, {os.cpu_count()} cores, avx512_bf16 {"yes" if "avx512_bf16" in flags else "no"}'


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--data-dir', required=True, help='CIFAR-10 as JPEG class folders: DIR/train/<class>/*.jpg')
    ap.add_argument('--work', default=None, help='folder for the subset links and timm output (default: a temp dir)')
    ap.add_argument('--per-class', type=int, default=500, help='training images per class')
    ap.add_argument('--batch-size', type=int, default=128)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--workers', type=int, default=1, help='loader workers of the PIL path and of timm')
    ap.add_argument('--rounds', type=int, default=2)
    ap.add_argument('--only', nargs='*', default=list(CONTENDERS), choices=CONTENDERS)
    ap.add_argument('--timm-train', type=Path, default=os.environ.get('TIMM_TRAIN'),
                    help="timm's train.py, from a clone of huggingface/pytorch-image-models (default: $TIMM_TRAIN)")
    ap.add_argument('--json', default=None, help='also write the results here')
    args = ap.parse_args()
    if 'timm' in args.only and not (args.timm_train and Path(args.timm_train).is_file()):
        where = f'{args.timm_train} is not a file' if args.timm_train else 'no --timm-train was given'
        others = ' '.join(c for c in args.only if c != 'timm')
        print(f"train_speed.py: error: (c) needs timm's train.py and {where}: pass --timm-train "
              f"path/to/pytorch-image-models/train.py (or set TIMM_TRAIN), or leave it out with --only {others}",
              file=sys.stderr)
        sys.exit(2)
    torch.set_num_threads(args.threads)

    work = Path(args.work or tempfile.mkdtemp(prefix='train_speed_'))
    root = make_subset(Path(args.data_dir).expanduser(), work / 'cifar10_subset', args.per_class, 10)
    data = create_dataset('imagefolder', str(root), 'train')
    model = new_model()
    data_cfg = resolve_model_data_config(model)
    mean, std, size = data_cfg['mean'], data_cfg['std'], (32, 32)
    aug = AugmentOptions(crop='rrc', hflip=0.5, three_augment=True, color_jitter=0.3, interpolation='bicubic')
    steps = len(data) // args.batch_size

    t = time.perf_counter()
    decoded = decode_dataset(data)  # decodes and caches once; read from the cache by every later run
    print(f'decoded {len(data)} images to {tuple(decoded.images.shape)} uint8 in {time.perf_counter() - t:.1f} s')

    def batches(name: str, epoch: int):
        if name == 'limit':
            return limit_batches(decoded.images, decoded.labels, args.batch_size, mean, std, epoch)
        sampler = create_train_sampler(data, seed=0)
        sampler.set_epoch(epoch)
        if name == 'pil':
            return create_loader(data, create_train_transform(size, mean, std, aug), sampler, args.batch_size,
                                 args.workers, drop_last=True)
        return create_train_batches(data, sampler, args.batch_size, size, mean, std, aug, data_path='tensor')

    # the PIL path and timm run alone (their loader workers would make batches ahead while another contender
    # trains); the tensor path and the limit, both single-process, take turns batch by batch
    slots = [[n] for n in args.only if n in ('pil', 'timm', 'editvit')]
    paired = [n for n in args.only if n in ('tensor', 'limit')]
    slots = slots[:1] + ([paired] if paired else []) + slots[1:]
    results = {name: [] for name in args.only}
    for r in range(args.rounds):
        for slot in (slots if r % 2 == 0 else slots[::-1]):
            load = os.getloadavg()[0]
            if slot == ['timm']:
                rates = {'timm': run_timm(args.timm_train, root, work / 'timm_out', args.threads, args.workers,
                                         args.batch_size, 2)}
            elif slot == ['editvit']:
                rates = {'editvit': run_editvit(root, work / 'editvit_out', args.threads, args.batch_size, 2)}
            else:
                rates = train_epochs({n: batches(n, r) for n in slot}, steps)
            for name, rate in rates.items():
                results[name].append(rate)
                print(f'round {r} {name:>6}: {rate:7.1f} img/s (load {load:.2f} before)', flush=True)

    mean_rate = {k: sum(v) / len(v) for k, v in results.items()}
    print(f'\n{cpu_line()} | threads {args.threads} | loader workers {args.workers} | load (1 min) '
          f'{os.getloadavg()[0]:.2f} | {len(data)} images, batch {args.batch_size}, {args.rounds} rounds')
    print('| pipeline | img/s (mean of rounds) | rounds |')
    print('|---|---|---|')
    for k, v in mean_rate.items():
        print(f'| {k} | {v:.1f} | {", ".join(f"{x:.1f}" for x in results[k])} |')
    ratios = {}
    for a, b in (('editvit', 'timm'), ('editvit', 'limit'), ('tensor', 'timm'), ('tensor', 'limit'), ('tensor', 'pil'),
                 ('pil', 'timm')):
        if a in mean_rate and b in mean_rate:
            ratios[f'{a}/{b}'] = mean_rate[a] / mean_rate[b]
            print(f'{LABELS[a]} / {LABELS[b]}: {ratios[f"{a}/{b}"]:.2f}x')
    if args.json:
        Path(args.json).write_text(json.dumps({'cpu': cpu_line(), 'threads': args.threads, 'workers': args.workers,
                                               'load': os.getloadavg()[0], 'rounds': results, 'ratios': ratios},
                                              indent=1))


if __name__ == '__main__':
    main()
