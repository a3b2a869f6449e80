"""A run's output folder: one writer at a time, and no result replaced unasked.

    RunFolder(path).open(resume=..., overwrite=...)   checks the folder up front and takes its lock

- **Lock.** `.lock` in the folder, held with `fcntl.flock` for as long as the run writes; a second run into the
  same folder fails at once and names the process that holds it. The kernel releases the lock when the process
  ends in any way (SIGKILL included), so a stale `.lock` file never blocks a later run.
- **Results.** A new run into a folder that holds any result of a run (config, checkpoint, weights, metrics,
  summary, log) is refused unless `overwrite`: then exactly those files are removed first, nothing else.
- **Resume.** Resuming a folder without a checkpoint says whether the run never started or was killed before
  its first checkpoint (and that the original command with --overwrite starts it again); a finished run is
  reported as finished (`RunFinished`) and nothing is changed, unless the resume asks for more epochs than the run
  was finished with (an extended run).
- **Up front.** An output that is a file, or a folder that cannot be written, fails before data or model are
  set up.
"""
import errno
import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import List, Optional, Union

from ..errors import ConfigError

LOCK = '.lock'
CHECKPOINT = 'checkpoint-last.pth'
FINISHED = 'metrics.json'
# every file a run writes; `overwrite` removes exactly these
RESULTS = ('config.yaml', CHECKPOINT, 'model.safetensors', 'model_ema.safetensors', FINISHED, 'summary.csv',
           'log.txt', 'training.png', 'updates.csv', 'per_class_iou.md', 'search.json')
RESULT_FOLDERS = ('tensorboard',)


def _reason(e: OSError) -> str:
    """'permission denied', 'read-only file system', ...: the system's words for an OSError."""
    return (e.strerror or str(e)).lower()


class RunFinished(ConfigError):
    """A resume of a run that is finished, for as many epochs as asked: nothing to do, nothing changed."""


class RunFolder:
    """The output folder of one run (see the module docstring)."""

    def __init__(self, path: Union[str, Path]) -> None:
        self.path = Path(path)
        self._lock_fd: Optional[int] = None

    def results(self) -> List[str]:
        """The names of the run results the folder holds."""
        names = [n for n in RESULTS if (self.path / n).exists()]
        return names + [n for n in RESULT_FOLDERS if (self.path / n).is_dir()]

    def is_finished(self, epochs: Optional[int] = None) -> bool:
        """Whether the run finished (its metrics are written), for at least `epochs` epochs if given."""
        if not (self.path / FINISHED).is_file():
            return False
        try:
            done = json.loads((self.path / FINISHED).read_text()).get('epochs')
        except (OSError, ValueError, AttributeError):
            return True  # unreadable metrics: treat the run as finished, so nothing is changed
        return epochs is None or not isinstance(done, int) or done >= epochs

    def has_checkpoint(self) -> bool:
        return (self.path / CHECKPOINT).is_file()

    def stale_files(self) -> List[Path]:
        """Temporary files of writes interrupted by a kill (atomic writes leave `.NAME.XXXX.tmp`)."""
        return sorted(self.path.glob('.*.tmp')) if self.path.is_dir() else []

    def check_writable(self) -> None:
        """Create the folder if needed; ConfigError if it is a file or cannot be written."""
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f'output {str(self.path)!r} is a file, not a folder; choose another --output')
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f'cannot create the output folder {str(self.path)!r}: {_reason(e)}; choose another '
                              f'--output') from e
        try:  # a file made and removed: the test the writes will face (os.access misses read-only mounts, ACLs)
            with tempfile.TemporaryFile(dir=self.path):
                pass
        except OSError as e:
            raise ConfigError(f'cannot write in the output folder {str(self.path)!r}: {_reason(e)}; choose another '
                              f'--output') from e

    def lock(self) -> None:
        """Take the folder's lock, or raise ConfigError naming the process that holds it."""
        path = self.path / LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.read(fd, 64).decode(errors='replace').strip() or 'another process'
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise ConfigError(f'{str(self.path)!r} is in use by another run (process {holder}); wait for it '
                                  f'to end, or choose another --output') from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def open(self, resume: bool, overwrite: bool = False, command: str = 'editvit train',
             epochs: Optional[int] = None) -> None:
        """Check the folder for a new or resumed run (of `epochs` epochs) and take its lock (see the module
        docstring).

        Raises:
            RunFinished: a resume of a run finished for at least `epochs` epochs; the folder is not changed.
            ConfigError: the folder cannot be used for this run; the message says why and what to do.
        """
        if resume and overwrite:
            raise ConfigError('--resume continues a run and --overwrite starts it again: pass one of them')
        if resume and not self.path.is_dir():
            raise ConfigError(f'nothing to resume: {str(self.path)!r} does not exist')
        self.check_writable()
        self.lock()
        try:
            self._check(resume, overwrite, command, epochs)
        except BaseException:
            self.unlock()
            raise

    def _check(self, resume: bool, overwrite: bool, command: str, epochs: Optional[int]) -> None:
        for stale in self.stale_files():
            stale.unlink(missing_ok=True)
        if resume:
            if self.is_finished(epochs):
                raise RunFinished(f'the run in {str(self.path)!r} is finished ({FINISHED} is written); nothing '
                                  f'was changed. To train it longer, resume with a larger --epochs')
            if not self.has_checkpoint():
                started = (self.path / 'config.yaml').is_file()
                raise ConfigError(
                    f'nothing to resume in {str(self.path)!r}: '
                    + ('the run was stopped before its first checkpoint. ' if started else 'no run was started here. ')
                    + f'Start it again with the original {command} command and --overwrite')
            return
        found = self.results()
        if found and not overwrite:
            raise ConfigError(f'{str(self.path)!r} already holds a run ({", ".join(found)}); pass --resume to '
                              f'continue it, --overwrite to replace it, or choose another --output')
        for name in found:
            target = self.path / name
            if target.is_dir():
                for child in sorted(target.rglob('*'), reverse=True):
                    child.rmdir() if child.is_dir() else child.unlink()
                target.rmdir()
            else:
                target.unlink()

    def __enter__(self) -> 'RunFolder':
        return self

    def __exit__(self, *exc) -> None:
        self.unlock()
