"""A search run, as the run loop sees it (`editvit.train.loop`): the run fields every command has, what decides the
supernet's weights, and the evolution's options. The evolution's options do not change the trained supernet: a
resume may change them (`RESUME_FREE_KEYS`), and the trained supernet is then searched again."""
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, FrozenSet, Optional

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
    # the evolution (`evolutionary_search`): members per generation, generations, members kept, scoring batches
    population: int = 16
    generations: int = 4
    parents: int = 4
    val_batches: Optional[int] = None

    RESUME_FREE_KEYS: ClassVar[FrozenSet[str]] = frozenset({'population', 'generations', 'parents', 'val_batches'})

    def validate(self) -> 'SupernetConfig':
        return self
