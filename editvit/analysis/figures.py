"""What the analysis pictures share: their resolution, how they are saved, and names wrapped to fit a panel.

Figures are built with `matplotlib.figure.Figure` (no pyplot, no global backend state) at a fixed size and DPI,
so a PNG is exactly `figsize * DPI` pixels.
"""
import re
from pathlib import Path

from matplotlib.figure import Figure

DPI = 100


def wrap_label(text: str, width: int) -> str:
    """Break a long label into lines of at most width characters (where it can), at spaces or, inside a model
    name, after an underscore: 'vit_small_patch14_dinov2 (random weights)' -> 'vit_small_patch14_dinov2' /
    '(random weights)'."""
    pattern = r'[^ ]*(?: |$)' if all(len(w) <= width for w in text.split()) else r'[^ _]*(?:_| |$)'
    pieces = re.findall(pattern, text)  # words ending in their ' ' (or, when a word is too long, their '_')
    lines, line = [], ''
    for piece in filter(None, pieces):
        if line and len((line + piece).rstrip()) > width:
            lines.append(line.rstrip())
            line = ''
        line += piece
    return '\n'.join(lines + [line.rstrip()])


def save_figure(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path
