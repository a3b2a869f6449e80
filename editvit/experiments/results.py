"""Result rows as JSON lines: one line per finished run, appended as soon as it finishes, so a killed suite keeps
every run it completed."""
import json
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Union

from ..strict_json import to_json
from ..weights import atomic_write

PathLike = Union[str, Path]


def append_row(path: PathLike, row: Mapping[str, Any]) -> None:
    """Append row as one JSON line (written and flushed in one call, so a kill leaves whole lines)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = to_json(row, indent=None) + '\n'
    with open(path, 'a') as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_rows(path: PathLike) -> List[Dict[str, Any]]:
    """Every row of a JSON-lines file (none if it does not exist); a malformed line is an error naming its number."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise ValueError(f'{str(path)!r} line {number} is not JSON: {e}') from e
    return rows


def write_rows(path: PathLike, rows: Iterable[Mapping[str, Any]]) -> None:
    """Replace the file with rows, one JSON line each, atomically (the old file stays whole if this is killed)."""
    text = ''.join(to_json(row, indent=None) + '\n' for row in rows)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
