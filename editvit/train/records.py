"""What a run leaves for people to read: a log line per epoch, summary.csv, metrics.json, TensorBoard scalars.
Only rank 0 writes; every file is replaced atomically."""
import csv
import io
import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from ..weights import atomic_write
from ..errors import ConfigError


def write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_summary(path: Path, history: List[Mapping[str, Any]]) -> Path:
    """One row per finished epoch, rewritten from the run's history (so a resumed run never repeats a row)."""
    columns: List[str] = []
    for row in history:
        columns += [k for k in row if k not in columns]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    writer.writerows(history)
    return write_text(path, out.getvalue())


def write_json(path: Path, data: Mapping[str, Any]) -> Path:
    return write_text(path, json.dumps(data, indent=2) + '\n')


class RunLog:
    """Log lines to stdout and output/log.txt, and scalars to TensorBoard if asked; silent on ranks other than 0."""

    def __init__(self, output: Path, enabled: bool, tensorboard: bool = False) -> None:
        self.enabled = enabled
        self.path = output / 'log.txt'
        self.writer: Optional[Any] = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                raise ConfigError('tensorboard logging needs the tensorboard package: pip install tensorboard') from e
            self.writer = SummaryWriter(log_dir=str(output / 'tensorboard'))

    def line(self, text: str) -> None:
        if not self.enabled:
            return
        print(text, flush=True)
        with open(self.path, 'a') as f:
            f.write(text + '\n')

    def scalars(self, values: Dict[str, float], step: int) -> None:
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
