"""DINOv2-S fine-tuned on CIFAR-10 as a ViT with [CLS] and as the EDIT converted from it, for the same images and
updates: top-1, the attention sink before and after, and the EDIT decoder's maps layer by layer (the paper's Fig. 5).

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/dinov2_finetune.py run \
        --weights DIR/dinov2_vits14_imgfocus.safetensors --cifar10 DATA/cifar10 --work /work/cache/finetune15 \
        --per-class-train 200 --per-class-test 100 --epochs 2 --seeds 0 1 2
    python benchmarks/dinov2_finetune.py table                            # the committed rows as markdown tables
    python benchmarks/dinov2_finetune.py figure --work /work/cache/finetune15 --out docs/images

The two models (both built from the same DINOv2-S state dict, at --img-size, the position embedding resampled):
    vit   DINOv2-S as timm builds it, [CLS] among the tokens, a new linear head on the final normed [CLS]
    edit  `vit_to_edit` of the same weights: the encoder over the patches only, the weight-shared decoder fresh
          (drawn with the seed), its query c_0 from DINOv2's [CLS], DINOv2's final norm, a new linear head
Training, the same for both (the whole network is trained): a balanced CIFAR-10 training subset (every image
upsampled bicubic from 32 px, horizontally flipped with probability 1/2), batch --batch, bf16 autocast, AdamW
(betas 0.9/0.999; weight decay 0.05 on weight matrices, none on vectors, positions and [CLS]) with lr --lr for every
weight taken from DINOv2 (patch and position embeddings, [CLS], blocks, final norm) and --head-lr for what is new
(the head; EDIT's decoder too), linear warm-up over the first tenth of the steps then cosine decay to 0, gradient
norm clipped at 1. The seed draws the new
weights, the data order and the flips; the order and flips depend on (seed, epoch) only, so both models see the same
batches. The test top-1 after the last epoch is reported (no selection on the test set).

Sink measures (`editvit.analysis`: `extract_attention`, `AttentionStatistics`; fp32, eval mode) on the first
--sink-images test images, before and after fine-tuning, per layer, over patch queries and averaged over heads:
    cls_attention        the attention a patch query gives [CLS] (vit only)
    max_token_ratio      the most-attended key's received attention over the mean of the other keys
    max_token_attention  the most-attended key's share (top-token share); max_token names that key
    entropy              of a patch query's attention row, nats (uniform over 64 patches at 112 px: 4.16)
    max_norm_ratio       the largest patch-token norm over the median (high-norm tokens give about 10)
    cls_query_entropy    of the [CLS] query's attention over the patches, renormalised: EDIT's decoder, or the
                         [CLS] row of the ViT's self-attention; Fig. 5's narrowing as a number
    centre_share         the share of that attention on the central half of the patch grid (the central 4 x 4 of
                         8 x 8 patches; chance 0.25): CIFAR-10 objects mostly sit in the centre
Rows go to benchmarks/results/dinov2_finetune.jsonl, one per (model, seed, subset, epochs); a row already there is
skipped. Each run keeps a checkpoint after every epoch in --work/<model>_seed<seed>/ (outside git), so a killed run
resumes at the last finished epoch with the same result; every file is written to a temporary name and renamed.
"""
import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import trunc_normal_

sys.path.insert(0, str(Path(__file__).parent))
from dinov2_features import (CLASSES, MEAN, STD, balanced_files, default_cifar10, default_weights,  # noqa: E402
                             dinov2_small, load_batch, load_state_dict, machine)
from dinov2_probes import NUM_CLASSES, edit_from_dinov2  # noqa: E402
from editvit.analysis import AttentionStatistics, ModelAnalysis, extract_attention  # noqa: E402
from editvit.analysis import sequential_attention_maps  # noqa: E402

RESULTS = Path(__file__).parent / 'results' / 'dinov2_finetune.jsonl'
MODELS = ('vit', 'edit')
NEW_WEIGHTS = {'vit': ('head.',), 'edit': ('head.', 'decoder.')}  # everything else comes from DINOv2
LAYER_METRICS = ('cls_attention', 'max_token_ratio', 'max_token_attention', 'max_token', 'entropy', 'max_norm_ratio',
                 'cls_query_entropy', 'cls_query_to_cls')
WARMUP_FRACTION = 0.1
WEIGHT_DECAY = 0.05
CLIP_NORM = 1.0


def build(kind: str, state_dict: Dict[str, torch.Tensor], img_size: int, seed: int) -> nn.Module:
    """The model to fine-tune, its new weights drawn with seed (the head as EDIT initialises its own: truncated
    normal std .02, zero bias)."""
    if kind == 'edit':
        return edit_from_dinov2(state_dict, img_size, seed)
    torch.manual_seed(seed)
    model = dinov2_small(state_dict, img_size)
    model.reset_classifier(NUM_CLASSES)
    trunc_normal_(model.head.weight, std=.02)
    nn.init.zeros_(model.head.bias)
    return model


def param_groups(model: nn.Module, kind: str, lr: float, head_lr: float) -> List[dict]:
    """AdamW groups: (pretrained, new) x (decayed matrices, undecayed vectors and embeddings)."""
    groups = {(new, decay): [] for new in (False, True) for decay in (False, True)}
    skip = model.no_weight_decay()
    for name, p in model.named_parameters():
        new = name.startswith(NEW_WEIGHTS[kind])
        groups[new, p.ndim >= 2 and name not in skip].append(p)
    return [{'params': ps, 'lr': head_lr if new else lr, 'weight_decay': WEIGHT_DECAY if decay else 0.}
            for (new, decay), ps in groups.items() if ps]


def schedule(total_steps: int):
    """The lr multiplier of step s: linear warm-up over the first tenth of the steps, then cosine to 0."""
    warmup = max(1, round(WARMUP_FRACTION * total_steps))
    return lambda s: (s + 1) / warmup if s < warmup else \
        0.5 * (1 + math.cos(math.pi * (s - warmup) / max(total_steps - warmup, 1)))


def epoch_batches(n: int, batch: int, seed: int, epoch: int) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """(image indices, flip mask) of every batch of an epoch: a function of (seed, epoch) only."""
    g = torch.Generator().manual_seed(1000 * seed + epoch)
    order = torch.randperm(n, generator=g)
    flips = torch.rand(n, generator=g) < 0.5
    return [(order[i:i + batch], flips[i:i + batch]) for i in range(0, n, batch)]


def train_step(model: nn.Module, opt: torch.optim.Optimizer, sched, x: torch.Tensor, y: torch.Tensor) -> float:
    model.train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        logits = model(x)  # (B, C)
    loss = F.cross_entropy(logits.float(), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
    opt.step()
    sched.step()
    return loss.item()


def top1(model: nn.Module, files, img_size: int, batch: int = 64) -> float:
    model.eval()
    correct = 0
    with torch.inference_mode(), torch.autocast('cpu', dtype=torch.bfloat16):
        for i in range(0, len(files), batch):
            chunk = files[i:i + batch]
            y = torch.tensor([label for _, label in chunk])
            correct += (model(load_batch(chunk, img_size)).argmax(-1) == y).sum().item()
    return correct / len(files)


def centre_share(maps: torch.Tensor) -> torch.Tensor:
    """Share of each map (B, L, h, w) on the central half of the grid (rows and columns h/4 .. 3h/4): (B, L)."""
    h, w = maps.shape[-2:]
    centre = maps[..., h // 4:h - h // 4, w // 4:w - w // 4].sum(dim=(-2, -1))  # (B, L)
    return centre / maps.sum(dim=(-2, -1)).clamp_min(1e-12)


def analyse(model: nn.Module, x: torch.Tensor, name: str, batch: int = 16) -> ModelAnalysis:
    """The sink measures per layer over images x (B, 3, S, S), and the [CLS] query's maps (Fig. 5), fp32."""
    stats, maps = AttentionStatistics(), []
    for i in range(0, len(x), batch):
        attention = extract_attention(model, x[i:i + batch])
        stats.update(attention)
        seq, label = sequential_attention_maps(attention)  # (b, L, h, w)
        maps.append(seq)
    maps = torch.cat(maps)  # (B, L, h, w)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    crops = (x * std + mean).clamp(0, 1).permute(0, 2, 3, 1).numpy()  # (B, S, S, 3)
    return ModelAnalysis(name=name, metrics=stats.summary(), block=stats.block(), maps=maps, map_label=label,
                         images=crops, image_names=[f'test image {i}' for i in range(len(x))])


def sink_row(analysis: ModelAnalysis) -> Dict[str, list]:
    """The per-layer lists a row keeps of an analysis (the measures in the module docstring)."""
    layers = analysis.metrics['layers']
    out = {k: [layer[k] for layer in layers] for k in LAYER_METRICS if k in layers[0]}
    out['centre_share'] = centre_share(analysis.maps).mean(0).tolist()
    return out


def atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + '.tmp')
    torch.save(obj, tmp)
    tmp.replace(path)


def read_rows(results: Path) -> List[dict]:
    return [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []


def append_row(row: dict, results: Path) -> None:
    """Add a row by writing the whole file under a temporary name and renaming it: a kill leaves the old file."""
    results.parent.mkdir(parents=True, exist_ok=True)
    text = results.read_text() if results.exists() else ''
    tmp = results.with_name(results.name + '.tmp')
    tmp.write_text(text + json.dumps(row) + '\n')
    tmp.replace(results)


def fine_tune(kind: str, seed: int, state_dict: Dict[str, torch.Tensor], train_files, test_files,
              sink_x: torch.Tensor, a: argparse.Namespace) -> dict:
    """One run: fine-tune, resuming from the last epoch checkpoint in the work folder; returns its row."""
    start_wall = time.time()
    run_dir = Path(a.work) / f'{kind}_seed{seed}'
    run_dir.mkdir(parents=True, exist_ok=True)
    model = build(kind, state_dict, a.img_size, seed)
    opt = torch.optim.AdamW(param_groups(model, kind, a.lr, a.head_lr), betas=(0.9, 0.999))
    steps_per_epoch = math.ceil(len(train_files) / a.batch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule(a.epochs * steps_per_epoch))
    ckpt_path = run_dir / 'checkpoint.pt'
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, weights_only=False)
        model.load_state_dict(ckpt['model'])
        opt.load_state_dict(ckpt['optimizer'])
        sched.load_state_dict(ckpt['scheduler'])
        state = ckpt['state']
        print(f'{kind} seed {seed}: resuming after epoch {state["epoch"]}', flush=True)
    else:
        before = analyse(model, sink_x, f'{kind} before fine-tuning')
        atomic_save({'maps': before.maps, 'images': before.images}, run_dir / 'maps_before.pt')
        state = {'epoch': 0, 'train_seconds': 0.0, 'epoch_losses': [], 'loads': [], 'sink_before': sink_row(before),
                 'resumed_from_epoch': None}
    if state['epoch'] > 0 and state['resumed_from_epoch'] is None:
        state['resumed_from_epoch'] = state['epoch']
    y_all = torch.tensor([label for _, label in train_files])
    for epoch in range(state['epoch'], a.epochs):
        start, losses = time.time(), []
        for step, (idx, flip) in enumerate(epoch_batches(len(train_files), a.batch, seed, epoch)):
            x = load_batch([train_files[i] for i in idx.tolist()], a.img_size)  # (B, 3, S, S)
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            losses.append(train_step(model, opt, sched, x, y_all[idx]))
            if step % 10 == 0:
                state['loads'].append(os.getloadavg()[0])
                seen = min((step + 1) * a.batch, len(train_files))
                print(f'{kind} seed {seed} epoch {epoch + 1}/{a.epochs} step {step + 1}/{steps_per_epoch}: '
                      f'loss {losses[-1]:.3f} ({seen / (time.time() - start):.1f} img/s, '
                      f'load {state["loads"][-1]:.1f})', flush=True)
        state['train_seconds'] += time.time() - start
        state['epoch_losses'].append(float(np.mean(losses)))
        state['epoch'] = epoch + 1
        atomic_save({'model': model.state_dict(), 'optimizer': opt.state_dict(), 'scheduler': sched.state_dict(),
                     'state': state}, ckpt_path)
    start = time.time()
    accuracy = top1(model, test_files, a.img_size)
    eval_seconds = time.time() - start
    after = analyse(model, sink_x, f'{kind} after fine-tuning')
    atomic_save({'maps': after.maps, 'images': after.images}, run_dir / 'maps_after.pt')
    return {
        'model': kind, 'seed': seed, 'top1': accuracy, 'train_images': len(train_files),
        'test_images': len(test_files), 'img_size': a.img_size, 'epochs': a.epochs, 'batch': a.batch,
        'steps': a.epochs * steps_per_epoch, 'lr': a.lr, 'head_lr': a.head_lr, 'weight_decay': WEIGHT_DECAY,
        'warmup_fraction': WARMUP_FRACTION, 'clip_norm': CLIP_NORM, 'precision': 'bf16-autocast',
        'epoch_losses': state['epoch_losses'],
        'trainable_params': sum(p.numel() for p in model.parameters() if p.requires_grad),
        'new_params': sum(p.numel() for n, p in model.named_parameters() if n.startswith(NEW_WEIGHTS[kind])),
        'sink_images': len(sink_x), 'sink_before': state['sink_before'], 'sink_after': sink_row(after),
        'train_seconds': round(state['train_seconds'], 1), 'eval_seconds': round(eval_seconds, 1),
        'wall_seconds_this_process': round(time.time() - start_wall, 1),
        'train_images_per_second': round(a.epochs * len(train_files) / state['train_seconds'], 2),
        'resumed_from_epoch': state['resumed_from_epoch'],
        'mean_load_during_training': round(float(np.mean(state['loads'])), 2), 'machine': machine(),
    }


def row_key(r: dict) -> tuple:
    return r['model'], r['seed'], r['train_images'], r['test_images'], r['img_size'], r['epochs']


def run(a: argparse.Namespace) -> None:
    torch.set_num_threads(a.threads)
    state_dict = load_state_dict(a.weights)
    train_files = balanced_files(a.cifar10, 'train', a.per_class_train)
    test_files = balanced_files(a.cifar10, 'test', a.per_class_test)
    if a.sink_images > len(test_files):
        sys.exit(f'error: --sink-images {a.sink_images} is more than the {len(test_files)} test images')
    sink_x = load_batch(test_files[:a.sink_images], a.img_size)  # every 10 consecutive images: one per class
    done = {row_key(r) for r in read_rows(RESULTS)}
    for seed in a.seeds:  # seed-major: an interrupted series still has both models of the seeds it finished
        for kind in a.models:
            key = (kind, seed, len(train_files), len(test_files), a.img_size, a.epochs)
            if key in done:
                print(f'{kind} seed {seed}: row present, skipped', flush=True)
                continue
            row = fine_tune(kind, seed, state_dict, train_files, test_files, sink_x, a)
            append_row(row, RESULTS)
            (Path(a.work) / f'{kind}_seed{seed}' / 'checkpoint.pt').unlink(missing_ok=True)
            print(f"{kind} seed {seed}: top-1 {100 * row['top1']:.2f}% ({row['train_seconds']:.0f} s training, "
                  f"{row['train_images_per_second']} img/s)", flush=True)


def _mean_std(values: List[float]) -> str:
    v = np.array(values, dtype=float)
    return f'{v.mean():.2f} +- {v.std(ddof=1):.2f}' if len(v) > 1 else f'{v.mean():.2f}'


def table(a: argparse.Namespace) -> None:
    """Markdown tables of the committed rows: top-1 (mean +- sample std over seeds); then per layer, mean over the
    seeds, before -> after fine-tuning: the patch queries' attention (the sink), and the [CLS] query's (Fig. 5)."""
    groups: Dict[tuple, List[dict]] = {}
    for r in read_rows(RESULTS):
        groups.setdefault(row_key(r)[:1] + row_key(r)[2:], []).append(r)
    print('| model | train / test images | px | epochs | steps | seeds | top-1 (%) | train img/s | s per run '
          '| mean load |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    for (kind, n_train, n_test, size, epochs), rs in groups.items():
        speed = np.mean([r['train_images_per_second'] for r in rs])
        print(f"| {kind} | {n_train} / {n_test} | {size} | {epochs} | {rs[0]['steps']} | {len(rs)} "
              f"| {_mean_std([100 * r['top1'] for r in rs])} | {speed:.1f} "
              f"| {np.mean([r['train_seconds'] + r['eval_seconds'] for r in rs]):.0f} "
              f"| {np.mean([r['mean_load_during_training'] for r in rs]):.1f} |")
    by_model = {key[0]: rs for key, rs in groups.items()}  # the last subset of each model

    def cell(kind: str, metric: str, layer: int) -> str:
        if kind not in by_model or metric not in by_model[kind][0]['sink_before']:
            return '-'
        before, after = (np.mean([r[w][metric][layer] for r in by_model[kind]]) for w in ('sink_before', 'sink_after'))
        return f'{before:.3g} -> {after:.3g}'

    tables = {
        'patch queries (the sink)': [('vit', 'cls_attention', 'ViT [CLS] share'),
                                     ('vit', 'max_token_ratio', 'ViT max-token ratio'),
                                     ('edit', 'max_token_ratio', 'EDIT max-token ratio'),
                                     ('edit', 'max_token_attention', 'EDIT top-token share'),
                                     ('vit', 'entropy', 'ViT entropy'), ('edit', 'entropy', 'EDIT entropy'),
                                     ('edit', 'max_norm_ratio', 'EDIT max/median norm')],
        'the [CLS] query (Fig. 5)': [('edit', 'cls_query_entropy', 'EDIT decoder entropy'),
                                     ('edit', 'centre_share', 'EDIT decoder centre share'),
                                     ('vit', 'cls_query_entropy', 'ViT [CLS]-row entropy'),
                                     ('vit', 'centre_share', 'ViT [CLS]-row centre share')],
    }
    rs = next(iter(by_model.values()))
    layers = len(rs[0]['sink_before']['entropy'])
    for title, columns in tables.items():
        print(f"\n{title}: mean over seeds, before -> after fine-tuning, {rs[0]['sink_images']} test images\n")
        print('| layer | ' + ' | '.join(name for _, _, name in columns) + ' |')
        print('|---|' + '---|' * len(columns))
        for layer in range(layers):
            print(f'| {layer + 1} | ' + ' | '.join(cell(k, m, layer) for k, m, _ in columns) + ' |')
    if 'edit' in by_model:
        print('\nEDIT decoder entropy after fine-tuning, per seed: ' + '; '.join(
            f"seed {r['seed']}: layer 1 {h[0]:.2f}, lowest {min(h):.2f} at layer {int(np.argmin(h)) + 1}, "
            f"layer {len(h)} {h[-1]:.2f}" for r in by_model['edit'] for h in [r['sink_after']['cls_query_entropy']]))
        print('\nEDIT encoder, most-attended patch after fine-tuning, per layer (one per seed): ' + '; '.join(
            f"{layer + 1}: {', '.join(r['sink_after']['max_token'][layer] for r in by_model['edit'])}"
            for layer in range(layers)))


def sink_figure(out: Path) -> Path:
    """Per layer, mean over the seeds of the committed rows, before (dashed) and after (solid) fine-tuning: the
    top-token share and the max-token ratio of the patch queries' attention, and the [CLS] query's entropy."""
    from matplotlib.figure import Figure
    rows = read_rows(RESULTS)
    panels = [('max_token_attention', 'share of the most-attended key\n([CLS] for the ViT, a patch for EDIT)', True),
              ('max_token_ratio', 'max-token ratio', True),
              ('cls_query_entropy', '[CLS] query entropy over the patches (nats)\nEDIT: decoder; ViT: [CLS] row',
               False)]
    fig = Figure(figsize=(13, 3.8), layout='constrained')
    axes = fig.subplots(1, len(panels))
    for ax, (metric, title, log) in zip(axes, panels):
        for kind, colour in zip(MODELS, ('tab:red', 'tab:blue')):
            rs = [r for r in rows if r['model'] == kind]
            if not rs:
                continue
            for when, style in (('sink_before', '--'), ('sink_after', '-')):
                v = np.array([r[when][metric] for r in rs])  # (seeds, L)
                layers = np.arange(1, v.shape[1] + 1)
                label = f"{kind} {'before' if when == 'sink_before' else 'after'} ({len(rs)} seeds)"
                ax.plot(layers, v.mean(0), style, color=colour, marker='o', ms=3, label=label)
        if metric == 'cls_query_entropy':
            uniform = math.log((rows[0]['img_size'] // 14) ** 2)  # over the patches of the grid
            ax.axhline(uniform, color='0.5', lw=1, ls=':', label='uniform')
        if log:
            ax.set_yscale('log')
        ax.set_title(title, fontsize=9)
        ax.set_xlabel('layer')
    axes[-1].legend(fontsize=8)
    fig.suptitle(f"DINOv2-S fine-tuned on CIFAR-10 ({rows[0]['train_images']} images, {rows[0]['epochs']} epochs, "
                 f"{rows[0]['img_size']} px): attention of the patch queries and of [CLS], "
                 f"{rows[0]['sink_images']} test images", fontsize=10)
    path = out / 'dinov2_finetune_sink.png'
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def figure(a: argparse.Namespace) -> None:
    """The per-layer sink figure from the committed rows, and Fig. 5 for --images of the sink images: EDIT's decoder
    maps before and after fine-tuning (seed --seed) and the fine-tuned ViT's [CLS] row, one PNG per image."""
    from editvit.analysis.map_figure import plot_sequential_maps
    print(f'wrote {sink_figure(Path(a.out))}')
    work = Path(a.work)
    runs = [('edit', 'before', 'EDIT converted, decoder fresh'), ('edit', 'after', 'EDIT fine-tuned'),
            ('vit', 'after', 'DINOv2-S ViT fine-tuned')]
    analyses = []
    for kind, when, name in runs:
        path = work / f'{kind}_seed{a.seed}' / f'maps_{when}.pt'
        if not path.exists():
            sys.exit(f'error: {path} not found: run `dinov2_finetune.py run --work {work}` for seed {a.seed} first')
        saved = torch.load(path, weights_only=False)
        label = 'decoder attention of [CLS] to patches' if kind == 'edit' else 'attention of [CLS] to patches'
        analyses.append(ModelAnalysis(name=f'{name} (seed {a.seed})', metrics={}, block=torch.zeros(0),
                                      maps=saved['maps'], map_label=label, images=saved['images'],
                                      image_names=[]))
    for index in a.images:
        title = f'test image {index}: {CLASSES[index % 10]}'  # the sink images cycle through the classes
        path = plot_sequential_maps(analyses, index, Path(a.out) / f'dinov2_finetune_maps_{index}.png', title)
        print(f'wrote {path}')


def main(argv: Optional[List[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = p.add_subparsers(dest='command', required=True)
    r = sub.add_parser('run', help='fine-tune both models for every seed (finished rows are skipped)')
    r.add_argument('--weights', default=default_weights(), help='DINOv2-S safetensors ($EDITVIT_MODELS/...)')
    r.add_argument('--cifar10', default=default_cifar10(), help='CIFAR-10 JPEG folder ($EDITVIT_DATA/cifar10)')
    r.add_argument('--work', required=True, help='folder for checkpoints and maps (large: outside git)')
    r.add_argument('--models', nargs='+', default=MODELS, choices=MODELS)
    r.add_argument('--seeds', nargs='+', type=int, default=(0, 1, 2))
    r.add_argument('--img-size', type=int, default=112)
    r.add_argument('--per-class-train', type=int, default=200)
    r.add_argument('--per-class-test', type=int, default=100)
    r.add_argument('--epochs', type=int, default=2)
    r.add_argument('--batch', type=int, default=32)
    r.add_argument('--lr', type=float, default=5e-5, help='for the weights taken from DINOv2')
    r.add_argument('--head-lr', type=float, default=1e-3, help='for the new head (and EDIT decoder)')
    r.add_argument('--sink-images', type=int, default=32, help='test images for the sink measures and maps')
    r.add_argument('--threads', type=int, default=1)
    sub.add_parser('table', help='print the committed rows as markdown tables')
    f = sub.add_parser('figure', help="draw Fig. 5 from a finished run's saved maps")
    f.add_argument('--work', required=True)
    f.add_argument('--out', default='docs/images')
    f.add_argument('--seed', type=int, default=0)
    f.add_argument('--images', type=int, nargs='+', default=(0, 3))
    a = p.parse_args(argv)
    {'run': run, 'table': table, 'figure': figure}[a.command](a)


if __name__ == '__main__':
    main()
