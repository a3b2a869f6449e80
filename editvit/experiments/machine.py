"""Which machine produced a number: CPU model and vector extensions, cores, load, GPU, torch version."""
import os
import platform
from pathlib import Path
from typing import Any, Dict

import torch

# the extensions that decide whether bf16 pays off on a CPU (AVX2 only: torch emulates bf16, fp32 is faster)
_FLAGS = ('avx2', 'avx512f', 'avx512_bf16', 'amx_bf16')


def _cpu_info() -> Dict[str, Any]:
    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path('/proc/cpuinfo')
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(':')
            if key.strip() == 'model name':
                model = value.strip()
            elif key.strip() == 'flags':
                flags = set(value.split())
    return dict(cpu=model, cpu_flags=[f for f in _FLAGS if f in flags])


def describe_machine() -> Dict[str, Any]:
    """A dict for a result row: cpu, cpu_flags, cores, torch_threads, load_1min, gpu (None without CUDA), torch."""
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else None
    return dict(**_cpu_info(), cores=os.cpu_count(), torch_threads=torch.get_num_threads(),
                load_1min=round(load, 2) if load is not None else None,
                gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, torch=torch.__version__)

