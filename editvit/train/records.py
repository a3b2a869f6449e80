"""What a run leaves for people to read: a log line per epoch, summary.csv, metrics.json, TensorBoard scalars.
Only rank 0 writes; every file is replaced atomically. JSON is strict: NaN and infinities are written as null."""
import contextlib
import csv
import io
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Union

from ..strict_json import to_json
from ..weights import atomic_write
from ..errors import ConfigError


@contextlib.contextmanager
def naming(path: Union[str, Path]) -> Iterator[None]:
    """Give an OSError raised while writing path (ENOSPC from a write or fsync has no file name) path's name."""
    try:
        yield
    except OSError as e:
        if e.filename is None:
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise


def write_text(path: Path, text: str) -> Path:
    with naming(path):
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
    return write_text(path, to_json(data) + '\n')


class RunLog:
    """Log lines to stdout and output/log.txt, and scalars to TensorBoard if asked; silent on ranks other than 0."""

    def __init__(self, output: Path, enabled: bool, tensorboard: bool = False) -> None:
        self.enabled = enabled
        self.path = output / 'log.txt'
        self.writer: Optional[Any] = None
        self._said: set = set()
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                raise ConfigError('tensorboard logging needs the tensorboard package: pip install tensorboard') from e
            self.writer = SummaryWriter(log_dir=str(output / 'tensorboard'))

    def line(self, text: str, echo: bool = True) -> None:
        """Append a line to log.txt, and print it unless echo is False."""
        if not self.enabled:
            return
        if echo:
            print(text, flush=True)
        with naming(self.path), open(self.path, 'a') as f:
            f.write(text + '\n')

    def line_once(self, key: str, text: str) -> None:
        """A line written once per run (a missing optional package, say)."""
        if key not in self._said:
            self._said.add(key)
            self.line(text)

    def scalars(self, values: Dict[str, float], step: int, prefix: str = '') -> None:
        """TensorBoard scalars at step (an epoch, or with prefix 'update/' an optimiser update)."""
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(prefix + key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
