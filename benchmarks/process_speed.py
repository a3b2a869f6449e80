"""How to spend a machine's cores on one training run: one process of one thread, one process of N threads, or N DDP
processes of one thread each (torchrun, gloo), all at the recipe's global batch (32 images per update).

    python benchmarks/process_speed.py                             # the CIFAR-10 recipe, 2 cores
    python benchmarks/process_speed.py --recipe fashion_mnist_cpu --cores 2 --rounds 5

One training step = forward, cross-entropy, backward (with DDP's gradient all-reduce) and AdamW step of the recipe's
model on random images of its size. Each layout runs in its own child process(es) for --steps steps, the layouts in
interleaved rounds (1x1, 1xN, Nx1, 1x1, ...), timed by the wall clock (the cores are the point) and reported as
images per second of the whole run; each ratio is the median over rounds of the layout's rate over the one-thread
rate of the same round, so slow drifts of a shared machine's load cancel. Run it on an otherwise quiet machine: a
busy one slows the layouts that need every core most.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import torch

sys.path.insert(0, str(Path(__file__).parents[1]))
from editvit.configs import recipe_path  # noqa: E402
from editvit.experiments.machine import describe_machine  # noqa: E402
from editvit.models import create_model  # noqa: E402
from editvit.train.config import read_yaml  # noqa: E402
from editvit.train.distributed import launched  # noqa: E402

GLOBAL_BATCH = 32


def worker(recipe_name: str, steps: int) -> None:
    """Train the recipe's model for `steps` updates of GLOBAL_BATCH images (split over the torchrun processes, if
    any) and print the images per second of the timed steps (rank 0)."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    rank, world, _ = launched()
    if world > 1:
        dist.init_process_group('gloo')
    torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', 1)))
    recipe = read_yaml(recipe_path(recipe_name))
    torch.manual_seed(0)
    model = create_model(recipe['model'], 10, recipe['model_kwargs'],
                         layer_scale_init=recipe.get('layer_scale_init')).train()
    if world > 1:
        model = DistributedDataParallel(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    size = recipe['model_kwargs']['img_size']
    x = torch.randn(GLOBAL_BATCH // world, 3, size, size)  # (B / processes, 3, H, W)
    y = torch.randint(0, 10, (GLOBAL_BATCH // world,))  # (B / processes,)

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):  # warm-up: allocator, first-call overheads, DDP's bucket set-up
        step()
    if world > 1:
        dist.barrier()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if world > 1:
        dist.barrier()
    rate = steps * GLOBAL_BATCH / (time.perf_counter() - start)
    if rank == 0:
        print(f'{rate:.3f}', flush=True)
    if world > 1:
        dist.destroy_process_group()


def layouts(cores: int) -> Dict[str, List[str]]:
    """Layout name -> (threads per process, command prefix)."""
    me = [sys.executable, __file__]
    return {'1 process x 1 thread': ['1', *me],
            f'1 process x {cores} threads': [str(cores), *me],
            f'{cores} processes x 1 thread (DDP)': ['1', sys.executable, '-m', 'torch.distributed.run', '--standalone',
                                                    '--nproc_per_node', str(cores), __file__]}


def run_layout(spec: List[str], recipe: str, steps: int) -> float:
    threads, *cmd = spec
    env = dict(os.environ, OMP_NUM_THREADS=threads)
    out = subprocess.run([*cmd, '--worker', '--recipe', recipe, '--steps', str(steps)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--recipe', default='cifar10_cpu', help='a recipe in editvit/configs (default: cifar10_cpu)')
    parser.add_argument('--cores', type=int, default=2, help='threads or processes of the parallel layouts')
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--steps', type=int, default=60, help='timed updates per layout and round')
    parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.recipe, args.steps)
        return
    machine = describe_machine()
    print(f"{machine['cpu']} ({', '.join(machine['cpu_flags'])}), {machine['cores']} cores, torch {machine['torch']}, "
          f"ATen capability {torch.backends.cpu.get_cpu_capability()}, wall clock, load {machine['load_1min']}",
          flush=True)
    specs = layouts(args.cores)
    rates: Dict[str, List[float]] = {name: [] for name in specs}
    for _ in range(args.rounds):
        for name, spec in specs.items():
            rates[name].append(run_layout(spec, args.recipe, args.steps))
    base = rates['1 process x 1 thread']
    print(f'\n{args.recipe}: global batch {GLOBAL_BATCH}, {args.steps} updates per layout and round, {args.rounds} '
          'rounds')
    print('| layout | img/s (median) | against one thread |\n|---|---|---|')
    for name, values in rates.items():
        ratio = statistics.median(v / b for v, b in zip(values, base))
        print(f'| {name} | {statistics.median(values):.0f} | {ratio:.2f}x |')
    print(f"load {describe_machine()['load_1min']} at the end")


if __name__ == '__main__':
    main()
