"""DINOv2-S with its [CLS] taken out at test time, no training: where the attention that went to [CLS] goes, what
happens to the token norms, and whether the patch features get better or worse.

    # attention and norms per layer, on the four scikit-image photos and CIFAR-10 test images upsampled to 224
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/dinov2_without_cls.py attention \
        --weights DIR/dinov2_vits14_imgfocus.safetensors --cifar10 DATA/cifar10 --per-class 2
    # the same k-NN computed afresh at 112 and 224 px on a small subset
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/dinov2_without_cls.py resolution \
        --weights DIR/dinov2_vits14_imgfocus.safetensors --cifar10 DATA/cifar10 --train 500 --test 200
    # 'mask' and 'drop' give the same patch tokens (measured)
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/dinov2_without_cls.py equivalence \
        --weights DIR/dinov2_vits14_imgfocus.safetensors --cifar10 DATA/cifar10
    # k-NN top-1 from the tokens cached by benchmarks/dinov2_features.py
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/dinov2_without_cls.py knn \
        --weights DIR/dinov2_vits14_imgfocus.safetensors --cache /work/cache/dinov2_cifar10_112

Three modes (editvit.analysis.cls_removal): 'usual' (with [CLS]), 'mask' ([CLS] in the sequence but no query may
attend to it) and 'drop' (no [CLS] at all: the converted EDIT encoder). Per layer and mode, over patch queries only
(A = softmax attention (B, H, N, N), rows = queries; r_k = attention key k receives, averaged over heads and patch
queries):
    max_token_ratio   max_k r_k / mean_{j != argmax} r_j   (the attention-sink ratio of the paper's Fig. 1)
    sink              'cls' when the top key is [CLS], else 'patch'
    sink_share        max_k r_k: the share of a patch query's attention that the top key takes
    cls_share         r_[CLS] (usual mode): what the masked / dropped modes must send elsewhere
    entropy           -sum_k A_qk log A_qk of a patch query's row, averaged over heads and queries (nats)
    sink_background   for a patch sink: the fraction of images whose top patch lies outside the object, the object
                      being the patches that hold half the usual run's last-layer [CLS] attention (head mean);
                      background_fraction is the share of patches outside it (the chance rate)
    sink_same_patch   the fraction of images whose top patch key is the same patch in every mode that has one
    norm_median, norm_max_over_median   the output patch tokens' L2 norms (per image, then averaged)
Rows are appended to benchmarks/results/dinov2_without_cls.jsonl; a row already there (same key) is skipped.
"""
import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from dinov2_features import (MEAN, STD, balanced_files, default_cifar10, default_weights, dinov2_small,  # noqa: E402
                             load_batch, load_state_dict, machine)
from editvit.analysis import extract_attention, load_images  # noqa: E402
from editvit.analysis.cls_removal import cls_removed  # noqa: E402

RESULTS = Path(__file__).parent / 'results' / 'dinov2_without_cls.jsonl'
FIGURE = Path(__file__).parent / 'results' / 'dinov2_without_cls.png'
MODES = ('usual', 'mask', 'drop')


def read_rows() -> List[dict]:
    return [json.loads(line) for line in RESULTS.read_text().splitlines()] if RESULTS.exists() else []


def append_rows(rows: List[dict]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open('a') as f:
        for row in rows:
            f.write(json.dumps(row) + '\n')


def photo_batch(size: int) -> torch.Tensor:
    """The four scikit-image photos: shorter side resized to size (bicubic), centre crop, normalised."""
    from torchvision import transforms
    t = transforms.Compose([transforms.Resize(size, interpolation=transforms.InterpolationMode.BICUBIC),
                            transforms.CenterCrop(size), transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    return torch.stack([t(image.convert('RGB')) for _, image in load_images()])


def run_modes(model: torch.nn.Module, x: torch.Tensor) -> Dict[str, tuple]:
    """Per mode: the attention (list of (B, H, N, N)), the patch tokens per layer (list of (B, Np, D)), and how
    many tokens before the patches (1 for [CLS] in 'usual' and 'mask', 0 in 'drop')."""
    out = {}
    for mode in MODES:
        if mode == 'usual':
            maps = extract_attention(model, x)
        else:
            with cls_removed(model, mode):
                maps = extract_attention(model, x)
        P = maps.num_prefix_tokens
        out[mode] = ([a.float() for a in maps.attention], [t[:, P:].float() for t in maps.tokens], P)
    return out


def foreground(usual_attention: List[torch.Tensor], P: int) -> torch.Tensor:
    """(B, Np) bool: the patches that hold half the last-layer [CLS] attention (head mean), largest first."""
    a = usual_attention[-1][:, :, 0, P:].mean(1)  # (B, Np) [CLS] row, patch columns
    a = a / a.sum(-1, keepdim=True)
    order = a.argsort(-1, descending=True)  # (B, Np)
    cum = a.gather(-1, order).cumsum(-1)  # (B, Np)
    keep = cum - a.gather(-1, order) < 0.5  # take patches until half the mass is reached (inclusive)
    mask = torch.zeros_like(keep)
    return mask.scatter(-1, order, keep)  # (B, Np)


def layer_metrics(results: Dict[str, tuple]) -> List[dict]:
    usual_attention, _, P_usual = results['usual']
    fg = foreground(usual_attention, P_usual)  # (B, Np)
    rows, top_patch = [], {}
    for mode, (attention, tokens, P) in results.items():
        for layer, (a, t) in enumerate(zip(attention, tokens)):
            q = a[:, :, P:, :]  # (B, H, Np, N) patch queries
            r = q.mean(dim=(1, 2))  # (B, N) attention each key receives
            top = r.argmax(-1)  # (B,)
            r_top = r.max(-1).values  # (B,)
            others = (r.sum(-1) - r_top) / (r.shape[-1] - 1)  # (B,) mean over the other keys
            entropy = -(q * q.clamp_min(1e-12).log()).sum(-1).mean(dim=(1, 2))  # (B,)
            r_patch = r[:, P:]  # (B, Np)
            top_p = r_patch.argmax(-1)  # (B,) top patch key, whether or not it beats [CLS]
            top_patch[mode, layer] = top_p
            norms = t.norm(dim=-1)  # (B, Np)
            median = norms.median(-1).values  # (B,)
            row = {
                'mode': mode, 'layer': layer + 1,
                'max_token_ratio': (r_top / others).mean().item(),
                'sink': 'cls' if P and bool((top == 0).float().mean() > 0.5) else 'patch',
                'sink_is_cls_fraction': (top < P).float().mean().item(),
                'sink_share': r_top.mean().item(),
                'cls_share': r[:, 0].mean().item() if P else None,
                'top_patch_share': r_patch.max(-1).values.mean().item(),
                'top_patch_ratio': (r_patch.max(-1).values / ((r_patch.sum(-1) - r_patch.max(-1).values)
                                                              / (r_patch.shape[-1] - 1))).mean().item(),
                'top_patch_background': (~fg.gather(-1, top_p[:, None])[:, 0]).float().mean().item(),
                'entropy': entropy.mean().item(),
                'uniform_entropy': float(np.log(a.shape[-1])),
                'norm_median': median.mean().item(),
                'norm_max_over_median': (norms.max(-1).values / median).mean().item(),
            }
            rows.append(row)
    for row in rows:
        same = [top_patch[m, row['layer'] - 1] for m in MODES]
        row['top_patch_same_all_modes'] = ((same[0] == same[1]) & (same[1] == same[2])).float().mean().item()
    background = (~fg).float().mean().item()
    for row in rows:
        row['background_fraction'] = background
    return rows


def attention(args) -> None:
    torch.set_num_threads(1)
    done = {(r['images'], r['img_size']) for r in read_rows() if r.get('kind') == 'attention'}
    model = dinov2_small(load_state_dict(args.weights), args.img_size)
    sets = {'photos': lambda: photo_batch(args.img_size),
            'cifar10_test': lambda: load_batch(balanced_files(args.cifar10, 'test', args.per_class), args.img_size)}
    for name, make in sets.items():
        if (name, args.img_size) in done:
            print(f'{name}: rows present, skipped')
            continue
        x = make()
        per_batch = [layer_metrics(run_modes(model, x[i:i + 8])) for i in range(0, len(x), 8)]
        weights = [min(8, len(x) - i) for i in range(0, len(x), 8)]
        rows = []
        for j, row in enumerate(per_batch[0]):  # image-weighted mean of the batches' per-image means
            merged = dict(row)
            for k, v in row.items():
                if isinstance(v, float):
                    merged[k] = sum(w * b[j][k] for w, b in zip(weights, per_batch)) / sum(weights)
            rows.append({'kind': 'attention', 'images': name, 'num_images': len(x), 'img_size': args.img_size,
                         **merged, 'machine': machine()})
        append_rows(rows)
        for r in rows:
            print(f"{name} {r['mode']:5s} L{r['layer']:2d} ratio {r['max_token_ratio']:7.1f} sink {r['sink']:5s} "
                  f"cls {r['cls_share'] or 0:.2f} top-patch {r['top_patch_share']:.3f} "
                  f"bg {r['top_patch_background']:.2f} "
                  f"H {r['entropy']:.2f} norm {r['norm_median']:.1f} x{r['norm_max_over_median']:.2f}")
    plot()


def plot_only(args) -> None:
    plot()


def table(args) -> None:
    """Markdown tables of the committed rows: per layer, usual vs [CLS]-free ('drop'; 'mask' is the same)."""
    rows = read_rows()
    for images in sorted({r['images'] for r in rows if r.get('kind') == 'attention'}):
        by = {(r['mode'], r['layer']): r for r in rows if r.get('kind') == 'attention' and r['images'] == images}
        first = by['usual', 1]
        print(f"\n{images}: {first['num_images']} images at {first['img_size']} px; chance that a patch is "
              f"background: {first['background_fraction']:.2f}\n")
        print('| layer | [CLS] share | max-token ratio usual | sink on [CLS] | ratio w/o [CLS] | top-patch share '
              'usual / w/o | top patch in background w/o | same top patch in all modes | entropy usual / w/o '
              '| median norm usual / w/o | max/median w/o |')
        print('|' + '---|' * 11)
        for layer in range(1, 13):
            u, d = by['usual', layer], by['drop', layer]
            print(f"| {layer} | {u['cls_share']:.3f} | {u['max_token_ratio']:.1f} | {u['sink_is_cls_fraction']:.2f} "
                  f"| {d['max_token_ratio']:.1f} | {u['top_patch_share']:.3f} / {d['top_patch_share']:.3f} "
                  f"| {d['top_patch_background']:.2f} | {d['top_patch_same_all_modes']:.2f} "
                  f"| {u['entropy']:.2f} / {d['entropy']:.2f} | {u['norm_median']:.1f} / {d['norm_median']:.1f} "
                  f"| {d['norm_max_over_median']:.2f} |")
    knn_rows = [r for r in rows if r.get('kind') in ('knn', 'knn_resolution')]
    if knn_rows:
        print('\n| features | train / test images | px | features from | k-NN top-1 (%) | load |\n'
              '|---|---|---|---|---|---|')
        for r in knn_rows:
            source = 'cache' if r['kind'] == 'knn' else 'computed afresh'
            print(f"| {r['features']} | {r['train_images']} / {r['test_images']} | {r['img_size']} | {source} "
                  f"| {100 * r['top1']:.2f} | {r['machine']['loadavg'][0]} |")


def knn_top1(train: torch.Tensor, train_y: torch.Tensor, test: torch.Tensor, test_y: torch.Tensor,
             k: int = 20, temperature: float = 0.07, num_classes: int = 10) -> float:
    """DINO's weighted k-NN (Caron et al. 2021): cosine similarity, the k nearest vote with weight exp(s / T)."""
    train = torch.nn.functional.normalize(train, dim=-1)
    test = torch.nn.functional.normalize(test, dim=-1)
    correct = 0
    for i in range(0, len(test), 1000):
        sim = test[i:i + 1000] @ train.T  # (b, n)
        s, idx = sim.topk(k, dim=-1)  # (b, k)
        votes = torch.zeros(len(s), num_classes).scatter_add_(1, train_y[idx], (s / temperature).exp())  # (b, C)
        correct += (votes.argmax(-1) == test_y[i:i + 1000]).sum().item()
    return correct / len(test)


def knn(args) -> None:
    torch.set_num_threads(1)
    cache = Path(args.cache)
    done = {(r['features'], r['train_images'], r['test_images']) for r in read_rows() if r.get('kind') == 'knn'}
    model = dinov2_small(load_state_dict(args.weights), 224)  # only its final norm is used here

    def load(split: str, what: str) -> torch.Tensor:
        path = cache / f'{split}_{what}.npy'
        if not path.exists() or int(path.with_suffix('.done').read_text()) < np.load(path, mmap_mode='r').shape[0]:
            sys.exit(f'error: {path} is missing or incomplete: run benchmarks/dinov2_features.py --cache {cache}')
        return np.load(path, mmap_mode='r')

    def features(split: str, name: str, n: int) -> torch.Tensor:
        if name == 'usual_cls':
            return torch.from_numpy(np.ascontiguousarray(load(split, 'usual_final')[:n, 0])).float()
        if name == 'usual_avg':
            return torch.from_numpy(load(split, 'usual_final')[:n, 1:].astype(np.float32).mean(1))
        out = []  # drop_avg: the final norm on the last block's output, then the mean over patches
        with torch.inference_mode():
            for i in range(0, n, 500):
                last = torch.from_numpy(load(split, 'drop_layers')[i:min(i + 500, n), -1].astype(np.float32))
                out.append(model.norm(last).mean(1))  # (b, D)
        return torch.cat(out)

    if not (cache / 'train_labels.npy').exists():
        sys.exit(f'error: no token cache in {cache}: run benchmarks/dinov2_features.py --cache {cache} first')
    n_train, n_test = len(np.load(cache / 'train_labels.npy')), len(np.load(cache / 'test_labels.npy'))
    ytr = torch.from_numpy(np.load(cache / 'train_labels.npy'))
    yte = torch.from_numpy(np.load(cache / 'test_labels.npy'))
    # no 'mask' features: with [CLS] masked as a key its patch tokens are those of 'drop' (see `equivalence`)
    for name in ('usual_cls', 'usual_avg', 'drop_avg'):
        if (name, n_train, n_test) in done:
            continue
        top1 = knn_top1(features('train', name, n_train), ytr, features('test', name, n_test), yte)
        row = {'kind': 'knn', 'features': name, 'train_images': n_train, 'test_images': n_test, 'k': 20,
               'temperature': 0.07, 'img_size': int(round((load('test', 'usual_final').shape[1] - 1) ** .5)) * 14,
               'top1': top1, 'machine': machine()}
        append_rows([row])
        print(f'{name:10s} train {n_train} test {n_test}: k-NN top-1 {100 * top1:.2f}%')


def resolution(args) -> None:
    """k-NN of the three feature kinds computed afresh (bf16 autocast, as cached) at each --sizes, on the first
    --train / --test images of the same balanced lists as the cache: does the 112 px result hold at 224 px?"""
    torch.set_num_threads(1)
    state_dict = load_state_dict(args.weights)
    per_class = max(args.train, args.test) // 10
    train = balanced_files(args.cifar10, 'train', per_class)[:args.train]
    test = balanced_files(args.cifar10, 'test', per_class)[:args.test]
    done = {(r['img_size'], r['features']) for r in read_rows()
            if r.get('kind') == 'knn_resolution' and (r['train_images'], r['test_images']) == (args.train, args.test)}
    for size in args.sizes:
        if all((size, name) in done for name in ('usual_cls', 'usual_avg', 'drop_avg')):
            continue
        model = dinov2_small(state_dict, size)
        feats = {}
        for split, files in (('train', train), ('test', test)):
            parts = {'usual_cls': [], 'usual_avg': [], 'drop_avg': []}
            for i in range(0, len(files), 50):
                x = load_batch(files[i:i + 50], size)
                with torch.inference_mode(), torch.autocast('cpu', dtype=torch.bfloat16):
                    usual = model.forward_features(x).float()  # (b, 1+N, D), normed
                    with cls_removed(model, 'drop'):
                        drop = model.forward_features(x).float()  # (b, N, D), normed
                parts['usual_cls'].append(usual[:, 0])
                parts['usual_avg'].append(usual[:, 1:].mean(1))
                parts['drop_avg'].append(drop.mean(1))
            feats[split] = {k: torch.cat(v) for k, v in parts.items()}
        ytr = torch.tensor([label for _, label in train])
        yte = torch.tensor([label for _, label in test])
        for name in ('usual_cls', 'usual_avg', 'drop_avg'):
            top1 = knn_top1(feats['train'][name], ytr, feats['test'][name], yte)
            append_rows([{'kind': 'knn_resolution', 'features': name, 'img_size': size, 'train_images': len(train),
                          'test_images': len(test), 'k': 20, 'temperature': 0.07, 'top1': top1,
                          'machine': machine()}])
            print(f'{size} px {name:10s} train {len(train)} test {len(test)}: k-NN top-1 {100 * top1:.2f}%',
                  flush=True)


def equivalence(args) -> None:
    """'mask' and 'drop' give the same patch tokens: [CLS] reaches the patches only as a key, and masking that key
    leaves every patch row's softmax over the patches alone, as dropping the token does. Measured, fp32."""
    torch.set_num_threads(1)
    if any(r.get('kind') == 'equivalence' for r in read_rows()):
        print('equivalence row present, skipped')
        return
    model = dinov2_small(load_state_dict(args.weights), args.img_size)
    x = load_batch(balanced_files(args.cifar10, 'test', 1), args.img_size)  # (10, 3, S, S)
    out = {}
    with torch.inference_mode():
        for mode in ('mask', 'drop'):
            with cls_removed(model, mode):
                tokens = model.forward_features(x)  # (B, P+N, D)
            out[mode] = tokens if mode == 'drop' else tokens[:, 1:]  # (B, N, D): DINOv2-S has no registers
    diff = (out['mask'] - out['drop']).abs().max().item()
    row = {'kind': 'equivalence', 'num_images': len(x), 'img_size': args.img_size, 'max_abs_diff': diff,
           'max_abs': out['drop'].abs().max().item(), 'machine': machine()}
    append_rows([row])
    print(f"final patch tokens, mask vs drop: max |diff| {diff:.2e} (max |token| {row['max_abs']:.1f})")


def plot() -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows = [r for r in read_rows() if r.get('kind') == 'attention']
    sets = sorted({r['images'] for r in rows})
    metrics = [('max_token_ratio', 'max-token ratio (log)'), ('top_patch_share', 'share to the top patch key'),
               ('entropy', 'patch-query entropy (nats)'), ('norm_median', 'median patch-token norm (log)')]
    fig, axes = plt.subplots(len(sets), len(metrics), figsize=(4 * len(metrics), 3.2 * len(sets)), squeeze=False)
    for i, s in enumerate(sets):
        for j, (m, label) in enumerate(metrics):
            ax = axes[i, j]
            for mode, style in zip(MODES, ('-o', '-s', ':^')):  # 'mask' and 'drop' coincide: drawn dotted on top
                pts = sorted((r['layer'], r[m]) for r in rows if r['images'] == s and r['mode'] == mode)
                ax.plot(*zip(*pts), style, ms=4 if mode == 'drop' else 3, label=mode)
            if m in ('max_token_ratio', 'norm_median'):
                ax.set_yscale('log')
            ax.set_title(f'{s}: {label}', fontsize=9)
            ax.set_xlabel('layer')
    axes[0, 0].legend(title='[CLS]', fontsize=8)
    fig.tight_layout()
    fig.savefig(FIGURE, dpi=110)
    print(f'wrote {FIGURE}')


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = p.add_subparsers(dest='command', required=True)
    a = sub.add_parser('attention', help='per-layer attention and norms in the three modes')
    a.add_argument('--weights', default=default_weights())
    a.add_argument('--cifar10', default=default_cifar10())
    a.add_argument('--per-class', type=int, default=2, help='CIFAR-10 test images per class')
    a.add_argument('--img-size', type=int, default=224)
    k = sub.add_parser('knn', help='k-NN top-1 from cached tokens')
    k.add_argument('--weights', default=default_weights())
    k.add_argument('--cache', required=True)
    e = sub.add_parser('equivalence', help="check that 'mask' and 'drop' give the same patch tokens")
    e.add_argument('--weights', default=default_weights())
    e.add_argument('--cifar10', default=default_cifar10())
    e.add_argument('--img-size', type=int, default=224)
    r = sub.add_parser('resolution', help='k-NN at several resolutions on a small subset, computed afresh')
    r.add_argument('--weights', default=default_weights())
    r.add_argument('--cifar10', default=default_cifar10())
    r.add_argument('--sizes', type=int, nargs='+', default=(112, 224))
    r.add_argument('--train', type=int, default=500)
    r.add_argument('--test', type=int, default=200)
    sub.add_parser('plot', help='redraw the figure from the committed rows')
    sub.add_parser('table', help='print the committed rows as markdown tables')
    args = p.parse_args(argv)
    commands = {'attention': attention, 'knn': knn, 'equivalence': equivalence, 'resolution': resolution,
                'plot': plot_only, 'table': table}
    commands[args.command](args)


if __name__ == '__main__':
    main()
