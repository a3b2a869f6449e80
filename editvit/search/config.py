"""The supernet training run of a search, as the run loop sees it (`editvit.train.loop`): the run fields every
command has, and what decides the supernet's weights. The evolution's own options are not here: they do not change
the trained supernet, so a finished run can be searched again with others."""
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from ..train.config import Amp, Device


@dataclass
class SupernetConfig:
    """A supernet training run; `run_search` checks the values, the run loop resumes against them."""
    space: Dict[str, Any] = field(default_factory=dict)  # the search space's fields (`PSViTSearchSpace`)
    dataset: str = 'synthetic'
    data_dir: Optional[str] = None
    budget_macs: Optional[int] = None
    val_split_per_class: int = 100
    synthetic_samples: int = 256
    lr: float = 1e-3
    max_steps: Optional[int] = None  # stop after this many updates, within an epoch if need be
    num_workers: int = 2
    # the run fields of the run loop
    model: str = 'psvit_supernet'
    output: Optional[str] = None
    resume: bool = False
    overwrite: bool = False
    seed: int = 0
    epochs: int = 5
    batch_size: int = 128
    global_batch_size: Optional[int] = None
    amp: Amp = 'none'
    clip_grad: Optional[float] = None
    compile: bool = False
    checkpoint_every: int = 0
    tensorboard: bool = False
    progress: bool = True
    threads: Optional[int] = None
    device: Device = 'cpu'  # members are scored on the CPU

    def validate(self) -> 'SupernetConfig':
        return self
