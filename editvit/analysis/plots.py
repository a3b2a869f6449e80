"""The paper's pictures as PNGs: Fig. 1a (attention to [CLS] vs other tokens), Fig. 1b (the top-left 16 x 16 block of
every layer's attention) and Fig. 5 (the sequential attention maps of one image, `map_figure`). With two analyses
the models are drawn side by side (Fig. 1a) or in rows of their own (Fig. 1b, Fig. 5).

Each picture has a `*_figure` function that returns the matplotlib Figure and a `plot_*` function that saves it.
"""
import math
from pathlib import Path
from typing import Sequence, Tuple

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from .analyze import ModelAnalysis
from .figures import DPI, save_figure, wrap_label
from .map_figure import map_scales, maps_figure, maps_figure_size, plot_sequential_maps

__all__ = ['DPI', 'block_figure_size', 'blocks_figure', 'map_scales', 'maps_figure', 'maps_figure_size',
           'plot_blocks', 'plot_sequential_maps', 'plot_sink', 'sink_figure', 'sink_figure_size']

BLOCK_PANEL = 1.4  # inches per Fig. 1b panel
BLOCK_COLUMNS = 6  # Fig. 1b wraps the layers in rows of 6 (12 layers: 2 rows)
BLOCK_MIN_RANGE = 10.0  # Fig. 1b's colour scale spans at least this factor


def sink_figure_size(num_models: int) -> Tuple[float, float]:
    return 5.5 * num_models, 4.8


def _block_grid(num_layers: int) -> Tuple[int, int]:
    """(rows per model, columns) of Fig. 1b: at most BLOCK_COLUMNS layers side by side."""
    return math.ceil(num_layers / BLOCK_COLUMNS), min(num_layers, BLOCK_COLUMNS)


def block_figure_size(num_models: int, num_layers: int) -> Tuple[float, float]:
    rows, cols = _block_grid(num_layers)
    return BLOCK_PANEL * cols + 1.6, (BLOCK_PANEL + 0.3) * rows * num_models + 0.3 * num_models + 0.6


def _plain_log_axis(axis, low: float, high: float) -> None:
    """Log-scale ticks written as plain numbers (0.002, 0.01, 0.1): at 1, 2, 5 x 10^k, only at powers of ten
    when the range spans more than three decades, at every 1..9 x 10^k when it spans less than one."""
    subs = (1.0,) if high / low > 1e3 else (1.0, 2.0, 5.0) if high / low > 10 else tuple(range(1, 10))
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f'{v:g}'))
    axis.set_minor_formatter(NullFormatter())


def sink_figure(analyses: Sequence[ModelAnalysis]) -> Figure:
    """Fig. 1a: per layer, the attention patch queries give to [CLS], to the most-attended single token, and on
    average to each other token; log scale, one panel per model on a shared axis, one legend below."""
    fig = Figure(figsize=sink_figure_size(len(analyses)), layout='constrained')
    axes = fig.subplots(1, len(analyses), sharey=True, squeeze=False)[0]
    plotted, handles = [], {}
    for ax, analysis in zip(axes, analyses):
        layers = analysis.metrics['layers']
        x = [layer['layer'] for layer in layers]
        top = np.array([layer['max_token_attention'] for layer in layers])
        if analysis.metrics['has_cls']:
            # [CLS] is drawn as wide open rings under the most-attended token's small filled squares, so where
            # [CLS] is that token both stay visible
            cls = np.array([layer['cls_attention'] for layer in layers])
            handles['cls'], = ax.plot(x, cls, '-o', color='tab:red', lw=3, alpha=0.8, ms=10, mfc='none', mew=2,
                                      zorder=2, label='to [CLS]')
            other = np.array([layer['other_attention'] for layer in layers])
            plotted.append(cls)
        else:
            other = top / np.array([layer['max_token_ratio'] for layer in layers])  # the mean of the rest
        handles['top'], = ax.plot(x, top, ':s', color='black', lw=1.5, ms=4, zorder=3,
                                  label='to the most-attended token')
        handles['other'], = ax.plot(x, other, '-^', color='tab:blue', lw=1.5, ms=5, zorder=3,
                                    label='to each other token (mean)')
        plotted += [top, other]
        ax.set_yscale('log')
        ax.xaxis.set_major_locator(MaxNLocator(nbins=12, integer=True))
        ax.set_xlabel('layer')
        ax.grid(True, which='major', alpha=0.3)
        summary = analysis.metrics['summary']
        at_cls = sum(layer.get('max_token') == 'cls' for layer in layers)
        subtitle = (f'[CLS]/other: {summary["mean_sink_ratio"]:.1f}x on average; [CLS] is the most-attended '
                    f'token in {at_cls}/{len(layers)} layers' if 'mean_sink_ratio' in summary
                    else f'no [CLS] key; top/other: {summary["mean_max_token_ratio"]:.1f}x on average')
        ax.set_title(f'{wrap_label(analysis.name, 44)}\n{wrap_label(subtitle, 52)}', fontsize=10)
    values = np.concatenate(plotted)
    values = values[values > 0]
    # at least a factor 4 around the data, with plain-number ticks
    low, high = values.min() / 2, values.max() * 2
    axes[0].set_ylim(low, high)
    _plain_log_axis(axes[0].yaxis, low, high)
    axes[0].set_ylabel('attention from patch queries')
    fig.legend(handles=list(handles.values()), loc='outside lower center', fontsize=9, frameon=False,
               ncols=len(handles) if len(analyses) > 1 else 2)
    n = analyses[0].metrics['num_images']
    fig.suptitle(f'Attention sink (Fig. 1a), mean over heads and {n} image{"s" if n != 1 else ""}', fontsize=11)
    return fig


def plot_sink(analyses: Sequence[ModelAnalysis], path: Path) -> Path:
    return save_figure(sink_figure(analyses), path)


def blocks_figure(analyses: Sequence[ModelAnalysis]) -> Figure:
    """Fig. 1b: the top-left block of every layer's attention matrix (rows = queries, columns = keys), averaged over
    heads and images, rows of BLOCK_COLUMNS layers per model, one logarithmic colour scale."""
    num_layers = max(a.block.shape[0] for a in analyses)
    rows, cols = _block_grid(num_layers)
    fig = Figure(figsize=block_figure_size(len(analyses), num_layers), layout='constrained')
    panels, side = fig.subfigures(1, 2, width_ratios=[BLOCK_PANEL * cols, 1.2])
    subfigs = panels.subfigures(len(analyses), 1, squeeze=False)[:, 0]
    blocks = [a.block.numpy() for a in analyses]
    low = max(min(float(b[b > 0].min()) for b in blocks), 1e-4)
    high = max(float(b.max()) for b in blocks)
    if high / low < BLOCK_MIN_RANGE:  # near-uniform attention (a random model): a middle colour, not its noise
        centre = math.sqrt(low * high)
        low, high = centre / math.sqrt(BLOCK_MIN_RANGE), centre * math.sqrt(BLOCK_MIN_RANGE)
    norm = LogNorm(vmin=low, vmax=high)
    image = None
    for subfig, analysis, block in zip(subfigs, analyses, blocks):
        axes = subfig.subplots(rows, cols, squeeze=False)
        first = '[CLS]' if analysis.metrics['has_cls'] else 'p0'
        for layer, ax in enumerate(axes.flat):
            ax.set_xticks([])
            ax.set_yticks([])
            if layer >= block.shape[0]:
                ax.axis('off')
                continue
            image = ax.imshow(block[layer].clip(low, high), norm=norm, cmap='viridis', interpolation='nearest')
            ax.set_xticks([0], [first], fontsize=8)
            ax.set_title(f'layer {layer + 1}', fontsize=9)
        if len(analyses) > 1:
            subfig.suptitle(wrap_label(analysis.name, 80), fontsize=10, fontweight='bold')
    cax = side.subplots(3, 1, height_ratios=[0.08, 0.84, 0.08])
    cax[0].axis('off')
    cax[2].axis('off')
    bar = fig.colorbar(image, cax=cax[1])
    _plain_log_axis(bar.ax.yaxis, low, high)
    bar.ax.tick_params(labelsize=9)
    bar.set_label('attention (log scale)', fontsize=10)
    b = blocks[0].shape[-1]
    name = '' if len(analyses) > 1 else f'{wrap_label(analyses[0].name, 80)}\n'
    fig.suptitle(f'{name}Top-left {b}x{b} block of each layer\'s attention (Fig. 1b): rows = queries, columns = '
                 f'keys; mean over heads and images', fontsize=11)
    return fig


def plot_blocks(analyses: Sequence[ModelAnalysis], path: Path) -> Path:
    return save_figure(blocks_figure(analyses), path)
