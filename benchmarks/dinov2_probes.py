"""Frozen DINOv2-S on CIFAR-10: which head reads the encoder best? Probes trained on tokens cached once by
benchmarks/dinov2_features.py.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/dinov2_probes.py \
        --weights DIR/dinov2_vits14_imgfocus.safetensors --cache /work/cache/dinov2_cifar10_112 --seeds 0 1 2
    python benchmarks/dinov2_probes.py --table     # the committed rows, mean +- std over seeds

Probes (every one ends in a linear classifier; the encoder is never trained):
    linear_cls        linear on DINOv2's final normed [CLS] (the usual run)
    linear_avg        linear on the mean of the usual run's final normed patch tokens
    linear_avg_nocls  linear on the mean of the [CLS]-free encoder's final normed patch tokens ('drop')
    attnpool_nocls    attention pooling on the [CLS]-free encoder's last layer only: one learnable query, single-head
                      cross-attention over LN(tokens) (keys W_k, values W_v), then LayerNorm + linear (CaiT / MAP)
    attnpool_usual    the same head on the usual run's final patch tokens
    edit_decoder      EDIT's layer-aligned, weight-shared decoder (`ClassDecoder`, as EditVisionTransformer builds it)
                      over the outputs of all 12 blocks of the [CLS]-free encoder: c_0 = DINOv2's [CLS] token,
                      c_i = decoder(c_(i-1), block_i output), then EDIT's final norm (DINOv2's, as `vit_to_edit`
                      converts it) and a fresh linear head; decoder, c_0, norm and head are trained
    edit_decoder_last the same decoder, c_0, norm and head, applied once, to the last block's output only: the control
                      that separates reading every layer from the decoder's form (seeded query, attends to itself)
The two attention heads and the decoder each have about 2 D^2 weights in their attention (W_k, W_v).
Training, the same for every probe: AdamW (lr 1e-3, weight decay 0.05, betas 0.9/0.999), batch 256, EPOCHS epochs,
one warm-up epoch then cosine decay to 0, cross-entropy, no augmentation (tokens are cached); the test top-1 after
the last epoch is reported (no selection on the test set). Rows are appended to
benchmarks/results/dinov2_probes.jsonl and a (probe, seed, images) row already there is skipped.
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from dinov2_features import default_weights, load_state_dict, machine  # noqa: E402
from editvit import EditVisionTransformer, vit_to_edit  # noqa: E402

RESULTS = Path(__file__).parent / 'results' / 'dinov2_probes.jsonl'
PROBES = ('linear_cls', 'linear_avg', 'linear_avg_nocls', 'attnpool_usual', 'attnpool_nocls', 'edit_decoder',
          'edit_decoder_last')
NUM_CLASSES = 10


class AttentionPool(nn.Module):
    """One learnable query, single-head cross-attention over the tokens, LayerNorm, linear (CaiT's class attention /
    big_vision's MAP head, reduced to one query and one head)."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.randn(dim) * .02)
        self.norm_in = nn.LayerNorm(dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        # one query, so W_k and W_v fold onto it as in EDIT's ClassDecoder (same function, O(N D) not O(N D^2)):
        # q . (W_k x_j + b_k) = (W_k^T q) . x_j + const,   sum_j a_j (W_v x_j + b_v) = W_v (sum_j a_j x_j) + b_v
        x = self.norm_in(tokens)  # (B, N, D)
        q_k = self.k.weight.T @ self.query  # (D,)
        attn = (x @ q_k / math.sqrt(x.shape[-1])).softmax(-1)  # (B, N)
        pooled = self.v((attn.unsqueeze(1) @ x).squeeze(1))  # (B, D)
        return self.head(self.norm(pooled))  # (B, C)


class DecoderProbe(nn.Module):
    """EDIT's [CLS] path on a frozen encoder: the shared decoder after every block, final norm, linear head."""

    def __init__(self, edit: EditVisionTransformer) -> None:
        super().__init__()
        self.cls_token, self.decoder, self.norm, self.head = edit.cls_token, edit.decoder, edit.norm, edit.head

    def forward(self, layers: torch.Tensor) -> torch.Tensor:
        cls = self.cls_token.flatten(1).expand(layers.shape[0], -1)  # (B, D) c_0
        for i in range(layers.shape[1]):
            cls, _ = self.decoder(cls, layers[:, i])  # (B, D) c_i from block i's output (B, N, D)
        return self.head(self.norm(cls))  # (B, C)


def edit_from_dinov2(state_dict: Dict[str, torch.Tensor], img_size: int, seed: int) -> EditVisionTransformer:
    """The converted EDIT-S/14 (encoder, [CLS] seed and final norm from DINOv2; decoder and head fresh, drawn with
    seed)."""
    torch.manual_seed(seed)
    edit = EditVisionTransformer(img_size=img_size, patch_size=14, embed_dim=384, depth=12, num_heads=6,
                                 num_classes=NUM_CLASSES, init_values=1e-5)
    edit.load_state_dict(vit_to_edit(state_dict, edit))
    return edit


def inputs(cache: Path, split: str, probe: str, final_norm: nn.Module) -> torch.Tensor:
    """What each probe reads, fp16 in memory: (n, D), (n, N, D) or (n, L, N, D)."""
    usual = np.load(cache / f'{split}_usual_final.npy', mmap_mode='r')  # (n, 1+N, D)
    if probe == 'linear_cls':
        return torch.from_numpy(np.array(usual[:, 0]))
    if probe == 'linear_avg':
        return torch.from_numpy(usual[:, 1:].astype(np.float32).mean(1)).half()
    if probe == 'attnpool_usual':
        return torch.from_numpy(np.array(usual[:, 1:]))
    drop = np.load(cache / f'{split}_drop_layers.npy', mmap_mode='r')  # (n, L, N, D)
    if probe == 'edit_decoder':
        return torch.from_numpy(np.array(drop))
    if probe == 'edit_decoder_last':
        return torch.from_numpy(np.array(drop[:, -1:]))  # (n, 1, N, D)
    with torch.no_grad():  # the [CLS]-free encoder's final normed patch tokens
        last = torch.cat([final_norm(torch.from_numpy(drop[i:i + 500, -1].astype(np.float32)))
                          for i in range(0, len(drop), 500)]).half()  # (n, N, D)
    return last if probe == 'attnpool_nocls' else last.float().mean(1).half()


def build(probe: str, state_dict: Dict[str, torch.Tensor], img_size: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    if probe.startswith('linear'):
        return nn.Linear(384, NUM_CLASSES)
    if probe.startswith('attnpool'):
        return AttentionPool(384, NUM_CLASSES)
    return DecoderProbe(edit_from_dinov2(state_dict, img_size, seed))


def train_probe(model: nn.Module, x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
                seed: int, epochs: int, batch: int = 256, lr: float = 1e-3) -> Tuple[float, float, float]:
    """AdamW with one warm-up epoch and cosine decay; returns (test top-1, last-epoch train loss, seconds)."""
    g = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(len(x) / batch)
    total = epochs * steps_per_epoch
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    schedule: Callable[[int], float] = lambda s: (s + 1) / steps_per_epoch if s < steps_per_epoch else \
        0.5 * (1 + math.cos(math.pi * (s - steps_per_epoch) / max(total - steps_per_epoch, 1)))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    start = time.time()
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=g)
        losses = []
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            loss = F.cross_entropy(model(x[idx].float()), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
    seconds = time.time() - start
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x_test), 500):
            correct += (model(x_test[i:i + 500].float()).argmax(-1) == y_test[i:i + 500]).sum().item()
    return correct / len(x_test), float(np.mean(losses)), seconds


def table() -> None:
    """The committed rows as a markdown table: top-1 mean +- std over seeds (sample std, n-1)."""
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines()]
    groups: Dict[tuple, list] = {}
    for r in rows:
        groups.setdefault((r['probe'], r['train_images'], r['test_images'], r['img_size'], r['epochs']), []).append(r)
    print('| probe | train / test images | px | epochs | seeds | top-1 (%) | trainable params | s per seed | load |')
    print('|---|---|---|---|---|---|---|---|---|')
    for (probe, n_train, n_test, size, epochs), rs in groups.items():
        top1 = 100 * np.array([r['top1'] for r in rs])
        std = top1.std(ddof=1) if len(rs) > 1 else float('nan')
        print(f"| {probe} | {n_train} / {n_test} | {size} | {epochs} | {len(rs)} | {top1.mean():.2f} +- {std:.2f} "
              f"| {rs[0]['trainable_params']:,} | {np.mean([r['train_seconds'] for r in rs]):.0f} "
              f"| {rs[0]['machine']['loadavg'][0]} |")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--weights', default=default_weights())
    p.add_argument('--cache', help='folder written by benchmarks/dinov2_features.py')
    p.add_argument('--probes', nargs='+', default=PROBES, choices=PROBES)
    p.add_argument('--seeds', nargs='+', type=int, default=(0, 1, 2))
    p.add_argument('--epochs', type=int, default=20)
    p.add_argument('--table', action='store_true', help='print the committed rows as a table and stop')
    a = p.parse_args(argv)
    if a.table:
        return table()
    if a.cache is None:
        sys.exit('error: pass --cache DIR, the folder written by benchmarks/dinov2_features.py')
    torch.set_num_threads(1)
    cache = Path(a.cache)
    for split in ('train', 'test'):
        for name in ('usual_final', 'drop_layers'):
            path = cache / f'{split}_{name}.npy'
            n = np.load(path, mmap_mode='r').shape[0] if path.exists() else -1
            if n < 0 or int(path.with_suffix('.done').read_text()) < n:
                sys.exit(f'error: {path} is missing or incomplete: run benchmarks/dinov2_features.py --cache {cache}')
    state_dict = load_state_dict(a.weights)
    y = torch.from_numpy(np.load(cache / 'train_labels.npy'))
    y_test = torch.from_numpy(np.load(cache / 'test_labels.npy'))
    img_size = int(round((np.load(cache / 'test_usual_final.npy', mmap_mode='r').shape[1] - 1) ** .5)) * 14
    done = set()
    if RESULTS.exists():
        done = {(r['probe'], r['seed'], r['train_images'], r['test_images'], r['epochs'])
                for r in map(json.loads, RESULTS.read_text().splitlines())}
    final_norm = edit_from_dinov2(state_dict, img_size, 0).norm.eval()
    for probe in a.probes:
        todo = [s for s in a.seeds if (probe, s, len(y), len(y_test), a.epochs) not in done]
        if not todo:
            continue
        x, x_test = inputs(cache, 'train', probe, final_norm), inputs(cache, 'test', probe, final_norm)
        for seed in todo:
            model = build(probe, state_dict, img_size, seed)
            top1, loss, seconds = train_probe(model, x, y, x_test, y_test, seed, a.epochs)
            row = {'probe': probe, 'seed': seed, 'top1': top1, 'train_loss_last_epoch': loss,
                   'train_images': len(y), 'test_images': len(y_test), 'img_size': img_size, 'epochs': a.epochs,
                   'batch': 256, 'lr': 1e-3, 'weight_decay': 0.05,
                   'trainable_params': sum(p.numel() for p in model.parameters() if p.requires_grad),
                   'train_seconds': round(seconds, 1), 'machine': machine()}
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            with RESULTS.open('a') as f:
                f.write(json.dumps(row) + '\n')
            print(f'{probe:17s} seed {seed}: top-1 {100 * top1:.2f}% (loss {loss:.3f}, {seconds:.0f}s)', flush=True)


if __name__ == '__main__':
    main()
