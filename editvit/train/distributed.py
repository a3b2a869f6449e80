"""Distributed training through torchrun: process group set-up, device choice, reductions over ranks.

Run under `torchrun --nproc_per_node N -m editvit train ...`: torchrun sets RANK, WORLD_SIZE and LOCAL_RANK. gloo is
used on CPU and nccl on GPU. Without torchrun everything here is a no-op for a single process.
"""
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar

import torch
import torch.distributed as dist

from ..errors import ConfigError
from ..threads import processes_per_machine, set_threads

T = TypeVar('T')


@dataclass
class DistEnv:
    """Where this process stands: its rank among world_size processes and its device."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device('cpu')

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched() -> Tuple[int, int, int]:
    """(rank, world_size, local_rank) as torchrun set them for this process; (0, 1, 0) without torchrun."""
    env = os.environ
    return int(env.get('RANK', 0)), int(env.get('WORLD_SIZE', 1)), int(env.get('LOCAL_RANK', 0))


def init_distributed(device: Optional[str] = None) -> DistEnv:
    """Join the torchrun process group if there is one, and pick the device ('cuda' if available by default)."""
    if device == 'cuda' and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for, but torch sees no CUDA GPU; use --device cpu")
    kind = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    rank, world_size, local_rank = launched()
    if kind == 'cuda':
        torch.cuda.set_device(local_rank)
        torch_device = torch.device('cuda', local_rank)
    else:
        torch_device = torch.device('cpu')
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend='nccl' if kind == 'cuda' else 'gloo')
    return DistEnv(rank, world_size, local_rank, torch_device)


def all_reduce_sum(values: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Sum a float tensor over ranks (a copy; the input is unchanged)."""
    values = values.detach().clone()
    if env.distributed:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def all_reduce_sums(values: Dict[str, float], env: DistEnv) -> Dict[str, float]:
    """Sum named numbers over ranks, all in one reduction (float64, so counts of images stay exact)."""
    summed = all_reduce_sum(torch.tensor(list(values.values()), dtype=torch.float64), env)
    return dict(zip(values, summed.tolist()))


def all_gather(obj: Any, env: DistEnv) -> List[Any]:
    """Every rank's obj, in rank order (picklable plain data)."""
    if not env.distributed:
        return [obj]
    out: List[Any] = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj: Any, env: DistEnv) -> Any:
    """Rank 0's obj on every rank."""
    if not env.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def cleanup(env: DistEnv) -> None:
    if env.distributed and dist.is_initialized():
        dist.destroy_process_group()


def run_distributed(fn: Callable[[Any, DistEnv], T], cfg: Any) -> T:
    """Validate cfg, set the CPU threads (cfg.threads, else this rank's share of the idle cores), join the torchrun
    process group (if any), run fn(cfg, env), and always leave the group."""
    cfg.validate()
    previous = torch.get_num_threads()
    set_threads(cfg.threads, processes_per_machine())
    try:
        env = init_distributed(cfg.device)
        try:
            return fn(cfg, env)
        finally:
            cleanup(env)
    finally:
        torch.set_num_threads(previous)
