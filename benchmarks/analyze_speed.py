"""Time `editvit analyze` on 16 images: EDIT-S vs DeiT3-S at 224 (random weights); the target is under 1 min.

    .venv/bin/python benchmarks/analyze_speed.py [--threads 2]

The 16 images are scikit-image's four sample photos at four scales, written to a temporary folder. The time covers
what the command does after start-up (model creation, image loading, forward passes, metrics, all PNGs); the
process start-up (importing torch, timm, matplotlib) is timed separately.
"""
import argparse
import tempfile
import time
from pathlib import Path

T0 = time.perf_counter()
import torch  # noqa: E402

from editvit.analysis import run_analysis, sample_images  # noqa: E402

IMPORT_S = time.perf_counter() - T0


def write_images(folder: Path) -> None:
    for name, image in sample_images():
        for i, scale in enumerate((1.0, 0.8, 0.6, 0.5)):
            w, h = image.size
            image.resize((int(w * scale), int(h * scale))).save(folder / f'{name}_{i}.jpg')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--threads', type=int, default=None, help='torch threads (default: torch decides)')
    parser.add_argument('--model', default='edit_small_patch16_224')
    parser.add_argument('--compare', default='deit3_small_patch16_224')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        images, out = Path(tmp) / 'images', Path(tmp) / 'out'
        images.mkdir()
        write_images(images)
        start = time.perf_counter()
        run_analysis(args.model, out, images=[images], compare=args.compare)
        run_s = time.perf_counter() - start
        pngs = len(list(out.rglob('*.png')))
    print(f'{args.model} vs {args.compare}, 16 images at 224, {torch.get_num_threads()} threads: '
          f'imports {IMPORT_S:.1f}s + analysis {run_s:.1f}s = {IMPORT_S + run_s:.1f}s ({pngs} PNGs)')


if __name__ == '__main__':
    main()
