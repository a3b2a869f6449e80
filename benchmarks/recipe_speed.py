"""Training throughput of a small-data recipe's model against the options that could buy it more epochs in the same
time: another batch size, torch.compile, bf16 autocast, a narrower MLP, DeiT3 in place of EDIT.

    python benchmarks/recipe_speed.py                       # the CIFAR-10 recipe (editvit/configs/cifar10_cpu.yaml)
    python benchmarks/recipe_speed.py --recipe fashion_mnist_cpu --options batch_64

One training step = forward, backward and optimiser step of the recipe's model on random images of its size, one
update of the recipe's global batch in one process. The options are timed in interleaved rounds in one process
(recipe, option A, option B, recipe, ...), one torch thread, by the process's CPU time, and each ratio is the median
over rounds of the option's images per second over the recipe's in the same round: slow drifts of a shared machine's
load cancel in each pair.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Tuple

import torch

sys.path.insert(0, str(Path(__file__).parent))
from model_cost import make_step, paired_ratio, time_interleaved  # noqa: E402

from editvit.configs import recipe_path  # noqa: E402
from editvit.experiments.machine import describe_machine  # noqa: E402
from editvit.models import create_model  # noqa: E402
from editvit.train.config import read_yaml  # noqa: E402

# option -> what it changes: model name, model kwargs, batch size, precision, compilation
OPTIONS: Dict[str, Dict[str, Any]] = {
    'batch_64': dict(batch_size=64),
    'batch_128': dict(batch_size=128),
    'compile': dict(compile=True),
    'bf16': dict(amp=torch.bfloat16),
    'mlp_ratio_2': dict(model_kwargs=dict(mlp_ratio=2.0)),
    'deit3': dict(model='deit3_small_patch16_224'),
    'compile_bf16': dict(compile=True, amp=torch.bfloat16),
    'compile_bf16_mlp_ratio_2': dict(compile=True, amp=torch.bfloat16, model_kwargs=dict(mlp_ratio=2.0)),
    'deit3_compile_bf16': dict(model='deit3_small_patch16_224', compile=True, amp=torch.bfloat16),
}


def training_step(recipe: Dict[str, Any], change: Dict[str, Any]) -> Tuple[Callable[[], None], int]:
    """A closure running one training step of the recipe's model with `change` applied, and its batch size."""
    kwargs = dict(recipe['model_kwargs'], **change.get('model_kwargs', {}))
    model = create_model(change.get('model', recipe['model']), 10, kwargs,
                         layer_scale_init=recipe.get('layer_scale_init')).train()
    size = kwargs['img_size']
    batch = change.get('batch_size', recipe.get('global_batch_size') or recipe['batch_size'])
    x = torch.randn(batch, 3, size, size)  # (B, 3, H, W)
    return make_step(torch.compile(model) if change.get('compile') else model, x, True,
                     change.get('amp', torch.float32), 'cpu'), batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--recipe', default='cifar10_cpu', help='a recipe in editvit/configs (default: cifar10_cpu)')
    parser.add_argument('--options', nargs='+', default=list(OPTIONS), choices=list(OPTIONS),
                        help='options to time against the recipe (default: all)')
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument('--iters', type=int, default=3, help='steps per option and round')
    args = parser.parse_args()
    torch.set_num_threads(1)
    recipe = read_yaml(recipe_path(args.recipe))
    machine = describe_machine()
    print(f"{machine['cpu']} ({', '.join(machine['cpu_flags'])}), torch {machine['torch']}, 1 thread, CPU-time clock, "
          f"ATen capability {torch.backends.cpu.get_cpu_capability()}, load {machine['load_1min']}", flush=True)
    built = {'recipe': training_step(recipe, {}), **{o: training_step(recipe, OPTIONS[o]) for o in args.options}}
    steps, batches = {k: v[0] for k, v in built.items()}, {k: v[1] for k, v in built.items()}
    seconds = time_interleaved(steps, args.rounds, args.iters, 'cpu', time.process_time)
    per_image = {name: [t / batches[name] for t in times] for name, times in seconds.items()}
    print(f"\n{args.recipe}: {recipe['model']} {recipe['model_kwargs']}, batch {recipe['batch_size']}")
    print('| option | img/s (median) | img/s against the recipe |\n|---|---|---|')
    for name, times in per_image.items():
        ratio = 1 / paired_ratio(times, per_image['recipe'])
        print(f'| {name} | {1 / statistics.median(times):.0f} | {ratio:.2f}x |')
    print(f"load {describe_machine()['load_1min']} at the end")


if __name__ == '__main__':
    main()
