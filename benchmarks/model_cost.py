"""EDIT vs DeiT/DeiT3: parameters, MACs (folded and literal decoder) and time ratios, measured side by side.

    python benchmarks/model_cost.py                          # tiny, small, base; fp32 and bf16 on CPU
    python benchmarks/model_cost.py --models small --device cuda --precisions fp32 bf16

Timing: the models are run in interleaved rounds (DeiT3, EDIT folded, EDIT literal, DeiT3, ...) in one process, and
each ratio is the median over rounds of EDIT's time over DeiT3's time in the same round, so both see the same machine
state. On a CPU that
other processes share, `--clock cpu` (the default on CPU: one torch thread, timed by the process's CPU time) keeps the
ratios steady where wall-clock times swing with the load.
"""
import argparse
import json
import statistics
import time
from contextlib import nullcontext
from typing import Callable, Dict, List

import timm
import torch

import editvit  # noqa: F401  registers the EDIT models
from editvit.macs import count_macs

# EDIT size -> (EDIT model, baseline model, baseline kwargs). The paper compares EDIT-T with a DeiT3-style Tiny
# (Table 3, "DeiT3-T"): timm's DeiT-Tiny with DeiT3's LayerScale and patch-only position embedding, which EDIT-T
# shares; plain DeiT-Tiny has no LayerScale, and that difference would be counted as the decoder's.
PAIRS = {
    'tiny': ('edit_tiny_patch16_224', 'deit_tiny_patch16_224', dict(init_values=1e-6, no_embed_class=True)),
    'small': ('edit_small_patch16_224', 'deit3_small_patch16_224', {}),
    'base': ('edit_base_patch16_224', 'deit3_base_patch16_224', {}),
}
TABLE1 = {'tiny': (5.82, 1.42), 'small': (22.30, 5.28), 'base': (87.76, 20.27)}  # M params, GFLOPs (= GMACs)


def make_step(model: torch.nn.Module, x: torch.Tensor, train: bool, amp: torch.dtype, device: str) -> Callable:
    autocast = torch.autocast(device, dtype=amp) if amp != torch.float32 else nullcontext()
    if not train:
        def step():
            with torch.inference_mode(), autocast:
                model(x)
        return step
    opt = torch.optim.SGD(model.parameters(), lr=1e-6)

    def step():
        with autocast:
            loss = model(x).float().logsumexp(-1).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def time_interleaved(steps: Dict[str, Callable], rounds: int, iters: int, device: str,
                     clock: Callable[[], float] = time.perf_counter) -> Dict[str, List[float]]:
    """Seconds per step of each entry in each of `rounds` alternating rounds."""
    sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
    for step in steps.values():  # warm-up (allocator, autotuning, first-call overheads)
        step(), step()
    samples: Dict[str, List[float]] = {k: [] for k in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            sync()
            t0 = clock()
            for _ in range(iters):
                step()
            sync()
            samples[name].append((clock() - t0) / iters)
    return samples


def paired_ratio(times: List[float], base: List[float]) -> float:
    """Median over rounds of the ratio of two runs measured next to each other: slow drifts of the machine's load
    cancel in each pair."""
    return statistics.median(t / b for t, b in zip(times, base))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', nargs='+', default=list(PAIRS), choices=list(PAIRS))
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--precisions', nargs='+', default=['fp32', 'bf16'], choices=['fp32', 'bf16', 'fp16'])
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--bf16-batch-size', type=int, default=None,
                        help='batch for the bf16/fp16 timings (default: --batch-size); CPUs without native bf16 '
                             'matmuls (no AVX512-BF16/AMX) run bf16 several times slower than fp32')
    parser.add_argument('--rounds', type=int, default=15)
    parser.add_argument('--iters', type=int, default=1)
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: 1 with --clock cpu, else the torch default)')
    parser.add_argument('--clock', choices=['wall', 'cpu'], default=None,
                        help="'cpu': process CPU time, steady on a shared machine (default on CPU); 'wall' otherwise")
    parser.add_argument('--skip-timing', action='store_true')
    parser.add_argument('--json', help='also write the rows to this JSON file')
    args = parser.parse_args()
    clock_name = args.clock or ('cpu' if args.device == 'cpu' else 'wall')
    if args.device == 'cuda' and clock_name == 'cpu':
        parser.error('--clock cpu measures CPU work only; use --clock wall on cuda')
    threads = args.threads or (1 if clock_name == 'cpu' else None)
    if threads:
        torch.set_num_threads(threads)
    clock = time.process_time if clock_name == 'cpu' else time.perf_counter
    dtypes = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}
    device_name = torch.cuda.get_device_name() if args.device == 'cuda' else f'CPU, {torch.get_num_threads()} threads'
    if args.device == 'cpu':
        device_name += f', ATen CPU capability {torch.backends.cpu.get_cpu_capability()}'
    device_name += f', {clock_name} clock'
    print(f'torch {torch.__version__}, timm {timm.__version__}, {device_name}', flush=True)

    rows = []
    for size in args.models:
        edit_name, base_model, base_kwargs = PAIRS[size]
        base_name = base_model + (' (+LayerScale: DeiT3-T)' if base_kwargs else '')
        models = {
            base_name: timm.create_model(base_model, **base_kwargs),
            f'{edit_name} (folded)': timm.create_model(edit_name),
            f'{edit_name} (literal)': timm.create_model(edit_name, decoder_folded=False),
        }
        base_macs = count_macs(models[base_name])
        print(f'\n== {size}: Table 1 says {TABLE1[size][0]:.2f}M parameters, {TABLE1[size][1]:.2f} GFLOPs')
        for name, model in models.items():
            params = sum(p.numel() for p in model.parameters())
            macs = count_macs(model)
            print(f'{name:36s} {params / 1e6:7.2f}M params {macs / 1e9:7.2f} GMACs ({macs / base_macs - 1:+6.1%})',
                  flush=True)
            rows.append(dict(size=size, model=name, params=params, gmacs=macs / 1e9))

        if args.skip_timing:
            continue
        for precision in args.precisions:
            batch = args.batch_size if precision == 'fp32' else (args.bf16_batch_size or args.batch_size)
            x = torch.randn(batch, 3, 224, 224, device=args.device)
            for train in (False, True):
                steps = {}
                for name, model in models.items():
                    model.to(args.device).train(train)
                    steps[name] = make_step(model, x, train, dtypes[precision], args.device)
                samples = time_interleaved(steps, args.rounds, args.iters, args.device, clock)
                mode = 'train step' if train else 'inference'
                base_ms = statistics.median(samples[base_name]) * 1e3
                for name in list(models)[1:]:
                    ratio = paired_ratio(samples[name], samples[base_name])
                    ms = statistics.median(samples[name]) * 1e3
                    print(f'{precision} {mode:10s} {name:36s} {ms:8.1f} ms vs {base_ms:8.1f} ms  ratio {ratio:.3f}'
                          f'  (batch {batch}, {args.rounds} rounds)', flush=True)
                    rows.append(dict(size=size, model=name, baseline=base_name, precision=precision, mode=mode,
                                     ms=ms, baseline_ms=base_ms, ratio=ratio, device=device_name, batch_size=batch))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=1)


if __name__ == '__main__':
    main()
