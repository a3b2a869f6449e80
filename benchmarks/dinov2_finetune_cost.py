"""What fine-tuning DINOv2-S (a ViT with [CLS]) and its converted EDIT would cost on this CPU: the time of a few
full training steps (forward, backward, AdamW) at a small resolution, measured, then scaled to a planned run.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/dinov2_finetune_cost.py \
        --weights DIR/dinov2_vits14_imgfocus.safetensors --img-size 112 --batch 64 --steps 3

Random images stand in for data (the step time does not depend on the pixels). Rows go to
benchmarks/results/dinov2_finetune_cost.jsonl, one per (model, precision, img_size, batch).
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from dinov2_features import default_weights, dinov2_small, load_state_dict, machine  # noqa: E402
from dinov2_probes import edit_from_dinov2  # noqa: E402

RESULTS = Path(__file__).parent / 'results' / 'dinov2_finetune_cost.jsonl'


def step_seconds(model: torch.nn.Module, img_size: int, batch: int, steps: int, bf16: bool) -> float:
    """Median seconds of one training step after one warm-up step."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.05)
    x, y = torch.randn(batch, 3, img_size, img_size), torch.randint(0, 10, (batch,))
    model.train()
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--weights', default=default_weights())
    p.add_argument('--img-size', type=int, default=112)
    p.add_argument('--batch', type=int, default=64)
    p.add_argument('--steps', type=int, default=3)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    state_dict = load_state_dict(a.weights)
    for name in ('dinov2_vit', 'edit_converted'):
        for bf16 in (False, True):
            if name == 'dinov2_vit':
                model = dinov2_small(state_dict, a.img_size)
                model.reset_classifier(10)
            else:
                model = edit_from_dinov2(state_dict, a.img_size, 0)
            seconds = step_seconds(model, a.img_size, a.batch, a.steps, bf16)
            row = {'model': name, 'precision': 'bf16-autocast' if bf16 else 'fp32', 'img_size': a.img_size,
                   'batch': a.batch, 'steps_timed': a.steps, 'seconds_per_step': round(seconds, 3),
                   'images_per_second': round(a.batch / seconds, 2), 'machine': machine()}
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            with RESULTS.open('a') as f:
                f.write(json.dumps(row) + '\n')
            print(f"{name:15s} {row['precision']:13s}: {seconds:.2f} s/step of {a.batch} "
                  f"({row['images_per_second']} img/s, load {row['machine']['loadavg'][0]})", flush=True)


if __name__ == '__main__':
    main()
