"""Where the demo's data comes from: an argument, the EDITVIT_DATA variable, or torchvision's download."""
import os
import socket
from pathlib import Path
from typing import Optional, Union

from ..data import DATA_ENV, DataError

PathLike = Union[str, Path]
DOWNLOAD_TIMEOUT_S = 30


class MissingDataError(DataError):
    """No data: none given, none under $EDITVIT_DATA, and the download failed."""


def default_download_root() -> Path:
    return Path(os.environ.get('XDG_CACHE_HOME', Path.home() / '.cache')) / 'editvit' / 'cifar10'


def _download_cifar10(root: Path) -> None:
    from torchvision.datasets import CIFAR10
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # fail, not hang, on a machine without internet
    try:
        for train in (True, False):
            CIFAR10(str(root), train=train, download=True)
    finally:
        socket.setdefaulttimeout(previous)


def locate_data(data_dir: Optional[PathLike] = None, download_root: Optional[PathLike] = None) -> Path:
    """The CIFAR-10 folder: data_dir if given; else $EDITVIT_DATA/cifar10 if it exists; else torchvision's copy in
    download_root (default ~/.cache/editvit/cifar10), downloaded if needed.

    Either layout works: train/<class>/*.jpg + test/<class>/*.jpg, or torchvision's cifar-10-batches-py/.

    Raises:
        MissingDataError: data_dir does not exist, or there is no data and the download failed; the message
            names both ways to provide it.
    """
    how = ('Give the data with --data-dir DIR (make demo DATA=DIR) or EDITVIT_DATA=PARENT (read from '
           'PARENT/cifar10), holding train/<class>/*.jpg and test/<class>/*.jpg or torchvision\'s '
           'cifar-10-batches-py/; or run where the internet is reachable, so torchvision downloads it')
    if data_dir is not None:
        path = Path(data_dir).expanduser()
        if not path.is_dir():
            raise MissingDataError(f'data directory {str(path)!r} does not exist. {how}.')
        return path
    base = os.environ.get(DATA_ENV)
    if base and (Path(base).expanduser() / 'cifar10').is_dir():
        return Path(base).expanduser() / 'cifar10'
    root = Path(download_root).expanduser() if download_root else default_download_root()
    if (root / 'cifar-10-batches-py').is_dir():
        return root
    env_note = f'{DATA_ENV}={base} has no cifar10/ folder' if base else f'{DATA_ENV} is not set'
    print(f'no CIFAR-10 given ({env_note}); downloading it with torchvision to {root} ...', flush=True)
    try:
        _download_cifar10(root)
    except Exception as e:  # URLError, timeouts, integrity errors: all mean "no data"
        raise MissingDataError(f'no CIFAR-10: {env_note}, and the torchvision download to {str(root)!r} failed '
                               f'({type(e).__name__}: {e}). {how} (to {root}).') from e
    return root
