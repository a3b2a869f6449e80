"""training.png: a run's loss, learning rate and validation metric (top-1, or mIoU for segmentation) per epoch,
redrawn after every epoch."""
from pathlib import Path
from typing import Any, List, Mapping, Optional

from ..weights import atomic_write

PLOTS_EXTRA = "pip install 'editvit[plots]'"
# the validation metric drawn: the first of these columns the rows have
METRICS = (('val_top1', 'top-1'), ('val_mIoU', 'mIoU'))


def plot_training(history: List[Mapping[str, Any]], path: Path, title: str = '') -> Optional[Path]:
    """Draw the epoch rows of a run (train/val loss, lr, val top-1 or mIoU and EMA top-1, each where present) into
    path.

    Returns the path, or None when matplotlib is not installed (the run goes on; the caller says so once).
    """
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return None

    def series(key):  # (epochs, values) of the rows that have key (a segmentation run evaluates every N epochs)
        rows = [r for r in history if r.get(key) is not None]
        return [r['epoch'] + 1 for r in rows], [float(r[key]) for r in rows]

    epochs = [row['epoch'] + 1 for row in history]
    fig, (ax_loss, ax_top1, ax_lr) = plt.subplots(1, 3, figsize=(13, 3.6), dpi=100)
    ax_loss.plot(*series('train_loss'), 'o-', label='train', color='tab:blue')
    if series('val_loss')[0]:
        ax_loss.plot(*series('val_loss'), 's-', label='val', color='tab:orange')
    ax_loss.set(xlabel='epoch', ylabel='loss', title='loss')
    ax_loss.legend()
    key, name = next(((k, n) for k, n in METRICS if series(k)[0]), METRICS[0])
    x, y = series(key)
    ax_top1.plot(x, y, 's-', label='val', color='tab:orange')
    if series('ema_' + key)[0]:
        ax_top1.plot(*series('ema_' + key), 'd--', label='val (EMA)', color='tab:green')
    if y:
        best = max(y)
        ax_top1.axhline(best, color='grey', lw=0.8, ls=':')
        ax_top1.legend()
    ax_top1.set(xlabel='epoch', ylabel=f'{name} (%)', title=f'val {name}' + (f' (best {max(y):.2f}%)' if y else ''))
    ax_lr.plot(*series('lr'), 'o-', color='tab:purple')
    ax_lr.set(xlabel='epoch', ylabel='learning rate', title='lr at the end of each epoch')
    ax_lr.ticklabel_format(axis='y', style='sci', scilimits=(-2, 2))
    for ax in (ax_loss, ax_top1, ax_lr):
        ax.grid(alpha=0.3)
        if len(epochs) <= 20:
            ax.set_xticks(epochs)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format='png'))
    plt.close(fig)
    return Path(path)
