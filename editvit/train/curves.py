"""training.png: a run's loss, learning rate and top-1 per epoch, redrawn after every epoch."""
from pathlib import Path
from typing import Any, List, Mapping, Optional

from ..weights import atomic_write

PLOTS_EXTRA = "pip install 'editvit[plots]'"


def plot_training(history: List[Mapping[str, Any]], path: Path, title: str = '') -> Optional[Path]:
    """Draw the epoch rows of a run (train/val loss, lr, val top-1 and EMA top-1 when present) into path.

    Returns the path, or None when matplotlib is not installed (the run goes on; the caller says so once).
    """
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    epochs = [row['epoch'] + 1 for row in history]
    fig, (ax_loss, ax_top1, ax_lr) = plt.subplots(1, 3, figsize=(13, 3.6), dpi=100)
    ax_loss.plot(epochs, [r['train_loss'] for r in history], 'o-', label='train', color='tab:blue')
    ax_loss.plot(epochs, [r['val_loss'] for r in history], 's-', label='val', color='tab:orange')
    ax_loss.set(xlabel='epoch', ylabel='loss', title='loss')
    ax_loss.legend()
    ax_top1.plot(epochs, [r['val_top1'] for r in history], 's-', label='val', color='tab:orange')
    if all('ema_val_top1' in r for r in history):
        ax_top1.plot(epochs, [r['ema_val_top1'] for r in history], 'd--', label='val (EMA)', color='tab:green')
    best = max(r['val_top1'] for r in history)
    ax_top1.axhline(best, color='grey', lw=0.8, ls=':')
    ax_top1.set(xlabel='epoch', ylabel='top-1 (%)', title=f'val top-1 (best {best:.2f}%)')
    ax_top1.legend()
    ax_lr.plot(epochs, [r['lr'] for r in history], 'o-', color='tab:purple')
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
