"""DINOv2-S on CIFAR-10: the pretrained model at any resolution, balanced subsets of the JPEG folders, and the
encoder tokens of every image computed once and cached on disk for the probes (benchmarks/dinov2_probes.py) and the
k-NN of benchmarks/dinov2_without_cls.py.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/dinov2_features.py --weights DIR/dinov2_vits14_imgfocus.safetensors \
        --cifar10 DATA/cifar10 --cache /work/cache/dinov2_cifar10_112 --img-size 112 \
        --per-class-train 500 --per-class-test 500

What is cached (fp16 .npy memmaps, one row per image; `<split>_labels.npy` gives the classes):
    <split>_usual_final.npy   (n, 1+N, D)  the usual run's final normed tokens: [CLS], then the N patch tokens
    <split>_drop_layers.npy   (n, L, N, D) the [CLS]-free run's ('drop', the converted EDIT encoder) block outputs
                                           after every layer, before the final norm (EDIT's decoder reads these)
(No 'mask' mode: with [CLS] masked as a key the patch tokens are those of 'drop'; see dinov2_without_cls.py.)
Each file is filled in chunks; `<file>.done` holds how many rows are final, so a killed run resumes where it stopped.

The encoder runs under bf16 autocast (about 2.7x faster on a CPU with avx512_bf16, measured 7.1 -> 19.2 img/s at
112 px on one thread); the tokens are stored in fp16.
"""
import argparse
import os
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import timm
import torch
import torch.nn.functional as F
from PIL import Image

from editvit.analysis.cls_removal import cls_removed

CLASSES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck')
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet, as DINOv2 was trained
WEIGHTS_NAME = 'dinov2_vits14_imgfocus.safetensors'


def default_weights() -> str:
    return str(Path(os.environ.get('EDITVIT_MODELS', '.')) / WEIGHTS_NAME)


def default_cifar10() -> str:
    return str(Path(os.environ.get('EDITVIT_DATA', '.')) / 'cifar10')


def load_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """The DINOv2-S timm state dict, or exit with one line saying what to do."""
    if not Path(path).is_file():
        sys.exit(f'error: DINOv2-S weights not found at {path}: pass --weights FILE or set EDITVIT_MODELS to the '
                 f'folder holding {WEIGHTS_NAME}')
    from safetensors.torch import load_file
    return load_file(path)


def resample_patch_positions(pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    """[CLS] slot + 16x16 patch positions (1, 1+256, D) -> (1, 1+grid^2, D): bicubic, align_corners=False and no
    antialiasing, as DINOv2's own runtime interpolates (timm's resample_abs_pos_embed antialiases by default)."""
    cls, patch = pos_embed[:, :1], pos_embed[:, 1:]  # (1, 1, D), (1, 256, D)
    side = int(patch.shape[1] ** 0.5)
    patch = patch.reshape(1, side, side, -1).permute(0, 3, 1, 2)  # (1, D, 16, 16)
    patch = F.interpolate(patch, size=(grid, grid), mode='bicubic', align_corners=False, antialias=False)
    return torch.cat([cls, patch.permute(0, 2, 3, 1).reshape(1, grid * grid, -1)], dim=1)  # (1, 1+grid^2, D)


def dinov2_small(state_dict: Dict[str, torch.Tensor], img_size: int) -> torch.nn.Module:
    """DINOv2 ViT-S/14 at img_size (a multiple of 14), weights loaded strictly, in eval mode."""
    model = timm.create_model('vit_small_patch14_dinov2', img_size=img_size, num_classes=0)
    pos_embed = resample_patch_positions(state_dict['pos_embed'], img_size // 14)
    model.load_state_dict({**state_dict, 'pos_embed': pos_embed})
    return model.eval()


def balanced_files(root: str, split: str, per_class: int, seed: int = 0) -> List[Tuple[Path, int]]:
    """per_class JPEGs of each class of <root>/<split>/<class>/*.jpg (all of them when per_class <= 0), drawn with
    a fixed seed, class by class interleaved so that any prefix of k*10 images is balanced."""
    folder = Path(root) / split
    if not folder.is_dir():
        sys.exit(f'error: CIFAR-10 JPEG folder {folder} not found: pass --cifar10 DIR holding train/ and test/ with '
                 f'one folder per class, or set EDITVIT_DATA')
    per_class_files = []
    for label, name in enumerate(CLASSES):
        files = sorted((folder / name).glob('*.jpg'))
        if per_class > 0:
            if len(files) < per_class:
                sys.exit(f'error: {folder / name} has {len(files)} images, fewer than the {per_class} asked for')
            order = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed + label))
            files = [files[i] for i in order[:per_class].tolist()]
        per_class_files.append([(f, label) for f in files])
    return [item for group in zip(*per_class_files) for item in group]  # interleaved: every 10 rows balanced


def load_batch(files: List[Tuple[Path, int]], img_size: int) -> torch.Tensor:
    """(B, 3, S, S) normalised images, each upsampled bicubic from 32x32 to img_size."""
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    out = []
    for path, _ in files:
        image = Image.open(path).convert('RGB').resize((img_size, img_size), Image.BICUBIC)
        x = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 255  # (3, S, S)
        out.append((x - mean) / std)
    return torch.stack(out)


def encode(model: torch.nn.Module, x: torch.Tensor, mode: str) -> np.ndarray:
    """The tokens to cache for one batch in one mode (see the module docstring), fp16."""
    with torch.inference_mode(), torch.autocast('cpu', dtype=torch.bfloat16):
        if mode == 'usual':
            out = model.norm(_blocks(model, x)[-1])  # (B, 1+N, D)
        else:
            with cls_removed(model, 'drop'):
                out = torch.stack(_blocks(model, x), dim=1)  # (B, L, N, D)
    return out.float().numpy().astype(np.float16)


def _blocks(model: torch.nn.Module, x: torch.Tensor) -> List[torch.Tensor]:
    """Every block's output, as timm's forward_features runs them (patch embed, positions, blocks)."""
    x = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(x))))  # (B, P+N, D)
    outs = []
    for block in model.blocks:
        x = block(x)  # (B, P+N, D)
        outs.append(x)
    return outs


def fill(path: Path, shape: Tuple[int, ...], files, model, mode: str, img_size: int, batch: int) -> None:
    """Compute the rows of one cache file that are not done yet."""
    done_file = path.with_suffix('.done')
    done = int(done_file.read_text()) if done_file.exists() else 0
    if path.exists() and np.load(path, mmap_mode='r').shape != shape:
        # a larger subset: its first rows are the smaller subset's images (balanced_files), so they are kept
        old = np.load(path, mmap_mode='r')
        if old.shape[1:] != shape[1:]:
            sys.exit(f'error: {path} holds tokens of shape {old.shape[1:]}, not {shape[1:]}: use another --cache')
        grown = np.lib.format.open_memmap(path.with_suffix('.tmp.npy'), mode='w+', dtype=np.float16, shape=shape)
        done = min(done, shape[0])
        grown[:done] = old[:done]
        grown.flush()
        del grown, old
        path.with_suffix('.tmp.npy').replace(path)
        done_file.write_text(str(done))
    if done >= shape[0]:
        return
    mm = np.lib.format.open_memmap(path, mode='r+' if path.exists() else 'w+', dtype=np.float16, shape=shape)
    start = time.time()
    for i in range(done, shape[0], batch):
        chunk = files[i:i + batch]
        mm[i:i + len(chunk)] = encode(model, load_batch(chunk, img_size), mode)
        mm.flush()
        done_file.write_text(str(i + len(chunk)))
        rate = (i + len(chunk) - done) / (time.time() - start)
        print(f'{path.name}: {i + len(chunk)}/{shape[0]} ({rate:.1f} img/s, load {os.getloadavg()[0]:.1f})',
              flush=True)
    del mm


def cache_features(weights: str, cifar10: str, cache: str, img_size: int, per_class_train: int, per_class_test: int,
                   batch: int = 64) -> None:
    torch.set_num_threads(1)
    model = dinov2_small(load_state_dict(weights), img_size)
    root = Path(cache)
    root.mkdir(parents=True, exist_ok=True)
    N, D, L = (img_size // 14) ** 2, model.embed_dim, len(model.blocks)
    splits = {'train': balanced_files(cifar10, 'train', per_class_train),
              'test': balanced_files(cifar10, 'test', per_class_test)}
    for split, files in splits.items():
        np.save(root / f'{split}_labels.npy', np.array([label for _, label in files], dtype=np.int64))
    for split, files in splits.items():
        fill(root / f'{split}_usual_final.npy', (len(files), 1 + N, D), files, model, 'usual', img_size, batch)
    for split, files in splits.items():
        fill(root / f'{split}_drop_layers.npy', (len(files), L, N, D), files, model, 'drop', img_size, batch)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--weights', default=default_weights(), help='DINOv2-S safetensors ($EDITVIT_MODELS/...)')
    p.add_argument('--cifar10', default=default_cifar10(), help='CIFAR-10 JPEG folder ($EDITVIT_DATA/cifar10)')
    p.add_argument('--cache', required=True, help='folder for the token caches (large: not in git)')
    p.add_argument('--img-size', type=int, default=112)
    p.add_argument('--per-class-train', type=int, default=1000)
    p.add_argument('--per-class-test', type=int, default=0, help='0: the whole test set')
    p.add_argument('--batch', type=int, default=64)
    a = p.parse_args(argv)
    cache_features(a.weights, a.cifar10, a.cache, a.img_size, a.per_class_train, a.per_class_test,
                   a.batch)


if __name__ == '__main__':
    main()


def machine() -> Dict[str, object]:
    """What a result was measured on: CPU model, whether it has avx512_bf16, torch threads, load average."""
    model, flags = 'unknown', ''
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name') and model == 'unknown':
                model = line.split(':', 1)[1].strip()
            if line.startswith('flags') and not flags:
                flags = line
    except OSError:
        pass
    return {'cpu': model, 'avx512_bf16': 'avx512_bf16' in flags.split(), 'threads': torch.get_num_threads(),
            'loadavg': [round(v, 2) for v in os.getloadavg()], 'torch': torch.__version__}
