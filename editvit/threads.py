"""How many CPU threads a command computes with: what the user asked for (--threads, else OMP_NUM_THREADS, the
usual way to pin a whole job), else the idle cores.

Why not every core: torch's OpenMP threads spin-wait for each other, so on a shared CPU more threads than idle
cores make a run several times slower (measured on a 2-core machine: 2 threads at load 5-7 trained at under 15
images/s, 1 thread at 110). On an idle machine the rule gives every core.
"""
import os
from typing import Optional

import torch

from .errors import ConfigError


def idle_cores() -> int:
    """Cores not busy with other work: cores minus the 1-minute load, at least 1."""
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else 0.0
    return max(1, min(cores, round(cores - load)))


def pinned_threads(threads: Optional[int] = None) -> Optional[int]:
    """The thread count the user asked for: `threads` if given, else OMP_NUM_THREADS if set; None if neither."""
    if threads is not None:
        if threads < 1:
            raise ConfigError(f'threads must be at least 1, got {threads}')
        return threads
    pinned = os.environ.get('OMP_NUM_THREADS', '').strip()
    if pinned.isdigit() and int(pinned) >= 1:
        return int(pinned)
    return None


def choose_threads(threads: Optional[int] = None, processes_per_machine: int = 1) -> int:
    """The thread count to use: `threads` if given, else OMP_NUM_THREADS if set, else this process's share of the
    idle cores (processes that run side by side on one machine, such as DDP ranks, split them)."""
    pinned = pinned_threads(threads)
    if pinned is not None:
        return pinned
    return max(1, idle_cores() // max(1, processes_per_machine))


def one_minute_load() -> float:
    """The machine's 1-minute load average (0 where the system has none), recorded next to every result."""
    return round(os.getloadavg()[0], 2) if hasattr(os, 'getloadavg') else 0.0


def processes_per_machine() -> int:
    """Processes of this job on this machine: torchrun's LOCAL_WORLD_SIZE, 1 without torchrun."""
    return max(1, int(os.environ.get('LOCAL_WORLD_SIZE', '1') or 1))


def set_threads(threads: Optional[int] = None, processes_per_machine: int = 1) -> int:
    """torch.set_num_threads(choose_threads(...)); returns the number set."""
    count = choose_threads(threads, processes_per_machine)
    torch.set_num_threads(count)
    return count
