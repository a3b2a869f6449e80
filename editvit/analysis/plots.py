"""The paper's pictures as PNGs: Fig. 1a (attention to [CLS] vs other tokens), Fig. 1b (the top-left 16 x 16 block of
every layer's attention) and Fig. 5 (the sequential attention maps of one image). With two analyses the models
are drawn side by side (Fig. 1a) or one row each (Fig. 1b, Fig. 5) on shared colour scales.

Figures are built with `matplotlib.figure.Figure` (no pyplot, no global backend state) at a fixed size and DPI,
so a PNG is exactly `figsize * DPI` pixels.
"""
import math
from pathlib import Path
from typing import Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Colormap, LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from .analyze import ModelAnalysis

DPI = 100
MAP_PANEL = 1.5  # inches per Fig. 5 panel
# Fig. 5 is drawn once per image, so it is laid out by hand (constrained layout costs more than the drawing):
# margins in inches left, right (colour bar), top (title) and above each row (model name, layer numbers)
_MAP_LEFT, _MAP_RIGHT, _MAP_TOP, _MAP_TITLE = 0.15, 1.15, 0.35, 0.45
MAP_ALPHA = 0.55  # opacity of the attention over the grey image
_MAP_GAP = 4  # white pixels between panels
BLOCK_PANEL = 1.4  # inches per Fig. 1b panel
BLOCK_COLUMNS = 12  # Fig. 1b wraps deeper models (CaiT's 24-layer trunk) onto more rows


def sink_figure_size(num_models: int) -> Tuple[float, float]:
    return 5.0 * num_models, 4.0


def _block_grid(num_layers: int) -> Tuple[int, int]:
    """(rows per model, columns) of Fig. 1b: at most BLOCK_COLUMNS layers side by side."""
    return math.ceil(num_layers / BLOCK_COLUMNS), min(num_layers, BLOCK_COLUMNS)


def block_figure_size(num_models: int, num_layers: int) -> Tuple[float, float]:
    rows, cols = _block_grid(num_layers)
    return BLOCK_PANEL * cols + 1.2, (BLOCK_PANEL + 0.2) * rows * num_models + 0.5


def _strip_width(num_layers: int) -> float:
    """Inches of the crop and the num_layers overlays with the gaps between them."""
    return MAP_PANEL * (num_layers + 1) + _MAP_GAP * num_layers / DPI


def maps_figure_size(num_models: int, num_layers: int) -> Tuple[float, float]:
    return _MAP_LEFT + _strip_width(num_layers) + _MAP_RIGHT, _MAP_TOP + (MAP_PANEL + _MAP_TITLE) * num_models


def _wrap(name: str, width: int = 18) -> str:
    """Break a long model name at an underscore so it fits beside a panel."""
    if len(name) <= width or '_' not in name[1:]:
        return name
    cut = name.rfind('_', 1, len(name) // 2 + 1)
    cut = cut if cut > 0 else name.find('_', 1)
    return name[:cut] + '\n' + name[cut:]


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def plot_sink(analyses: Sequence[ModelAnalysis], path: Path) -> Path:
    """Fig. 1a: per layer, the attention patch queries give to [CLS], to the most-attended single token, and on
    average to each other token; log scale, one panel per model on a shared axis."""
    fig = Figure(figsize=sink_figure_size(len(analyses)), layout='constrained')
    axes = fig.subplots(1, len(analyses), sharey=True, squeeze=False)[0]
    plotted = []
    for ax, analysis in zip(axes, analyses):
        layers = analysis.metrics['layers']
        x = [layer['layer'] for layer in layers]
        top = np.array([layer['max_token_attention'] for layer in layers])
        if analysis.metrics['has_cls']:
            cls = np.array([layer['cls_attention'] for layer in layers])
            ax.plot(x, cls, 'o-', color='tab:red', label='to [CLS]')
            other = np.array([layer['other_attention'] for layer in layers])
            plotted.append(cls)
        else:
            other = top / np.array([layer['max_token_ratio'] for layer in layers])  # the mean of the rest
        ax.plot(x, top, 's--', color='tab:orange', label='to the most-attended token', markersize=4)
        ax.plot(x, other, 'o-', color='tab:blue', label='to each other token (mean)')
        plotted += [top, other]
        ax.set_yscale('log')
        ax.xaxis.set_major_locator(MaxNLocator(nbins=12, integer=True))
        ax.set_xlabel('layer')
        ax.grid(True, which='both', alpha=0.3)
        summary = analysis.metrics['summary']
        subtitle = (f'[CLS]/other: {summary["mean_sink_ratio"]:.1f}x on average' if 'mean_sink_ratio' in summary
                    else f'no [CLS] key; top/other: {summary["mean_max_token_ratio"]:.1f}x on average')
        ax.set_title(f'{analysis.name}\n{subtitle}', fontsize=10)
        ax.legend(fontsize=8)
    values = np.concatenate(plotted)
    values = values[values > 0]
    # at least a factor 4 around the data, with plain-number ticks at 1, 2, 5 x 10^k
    axes[0].set_ylim(values.min() / 2, values.max() * 2)
    axes[0].yaxis.set_major_locator(LogLocator(base=10, subs=(1, 2, 5)))
    axes[0].yaxis.set_major_formatter(FuncFormatter(lambda v, _: f'{v:g}'))
    axes[0].yaxis.set_minor_formatter(NullFormatter())
    axes[0].set_ylabel('attention from patch queries')
    n = analyses[0].metrics['num_images']
    fig.suptitle(f'Attention sink (Fig. 1a), {n} image{"s" if n != 1 else ""}', fontsize=11)
    return _save(fig, path)


def plot_blocks(analyses: Sequence[ModelAnalysis], path: Path) -> Path:
    """Fig. 1b: the top-left block of every layer's attention matrix (rows = queries, columns = keys), averaged over
    heads and images, one row per model, one logarithmic colour scale."""
    num_layers = max(a.block.shape[0] for a in analyses)
    rows, cols = _block_grid(num_layers)
    fig = Figure(figsize=block_figure_size(len(analyses), num_layers), layout='constrained')
    axes = fig.subplots(rows * len(analyses), cols, squeeze=False)
    blocks = [a.block.numpy() for a in analyses]
    low = max(min(float(b[b > 0].min()) for b in blocks), 1e-4)
    norm = LogNorm(vmin=low, vmax=max(float(b.max()) for b in blocks))
    image = None
    for m, (analysis, block) in enumerate(zip(analyses, blocks)):
        first = 'CLS' if analysis.metrics['has_cls'] else 'p0'
        for layer in range(rows * cols):
            ax = axes[m * rows + layer // cols, layer % cols]
            ax.set_xticks([])
            ax.set_yticks([])
            if layer >= block.shape[0]:
                ax.axis('off')
                continue
            image = ax.imshow(block[layer].clip(min=low), norm=norm, cmap='viridis', interpolation='nearest')
            ax.set_xticks([0])
            ax.set_xticklabels([first], fontsize=7)
            ax.set_title(f'layer {layer + 1}', fontsize=9)
        axes[m * rows, 0].set_ylabel(_wrap(analysis.name), fontsize=8)
    fig.colorbar(image, ax=axes, shrink=0.9, label='attention')
    b = blocks[0].shape[-1]
    fig.suptitle(f'Top-left {b}x{b} block of each layer\'s attention (Fig. 1b): rows = queries, columns = keys',
                 fontsize=11)
    return _save(fig, path)


def _resize(images: np.ndarray, size: int, mode: str) -> np.ndarray:
    """(n, H, W) or (n, H, W, 3) arrays to (n, size, size[, 3])."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float()
    x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)  # (n, C, H, W)
    x = F.interpolate(x, size=(size, size), mode=mode, antialias=mode == 'bilinear', align_corners=False)
    x = x[:, 0] if x.shape[1] == 1 else x.permute(0, 2, 3, 1)
    return x.clamp_min(0).numpy()


def _strip(crop: np.ndarray, maps: np.ndarray, norm: Normalize, cmap: Colormap, panels: int) -> np.ndarray:
    """The crop, then each layer's map (upsampled bilinearly) blended over the grey crop, side by side at the
    pixel size they are drawn at (so matplotlib does not resample): (S, panels * (S + gap) - gap, 3)."""
    size = round(MAP_PANEL * DPI)
    crop = _resize(crop[None], size, 'bilinear')[0].clip(0, 1)  # (S, S, 3)
    colour = cmap(norm(_resize(maps, size, 'bilinear')))[..., :3]  # (L, S, S, 3)
    overlays = (1 - MAP_ALPHA) * crop.mean(axis=-1)[None, ..., None] + MAP_ALPHA * colour  # (L, S, S, 3)
    tiles = [crop, *overlays] + [np.ones_like(crop)] * (panels - 1 - len(overlays))
    gap = np.ones((size, _MAP_GAP, 3))
    return np.concatenate([t for tile in tiles for t in (tile, gap)][:-1], axis=1)


def plot_sequential_maps(analyses: Sequence[ModelAnalysis], index: int, path: Path) -> Path:
    """Fig. 5 for image `index`: the crop the model saw, then one overlay per layer; one row per model.

    All rows share one colour scale, from 0 to the largest value, at least twice the uniform level 1 / N_patches
    (so uniform attention is a middle colour, and narrowing shows as growing peaks).
    """
    num_layers = max(a.maps.shape[1] for a in analyses)
    width, height = maps_figure_size(len(analyses), num_layers)
    fig = Figure(figsize=(width, height))
    cmap = colormaps['jet']
    norm = Normalize(vmin=0, vmax=max(max(float(a.maps[index].max()), 2 / a.maps[index, 0].numel()) for a in analyses))

    def axes_at(left: float, top: float, w: float, h: float):  # inches from the top-left corner
        return fig.add_axes((left / width, 1 - (top + h) / height, w / width, h / height))

    for row, analysis in enumerate(analyses):
        top = _MAP_TOP + row * (MAP_PANEL + _MAP_TITLE) + _MAP_TITLE
        maps = analysis.maps[index].numpy()  # (L, h, w)
        # one image per row, at its drawn size: far cheaper than an axes or a resampled image per panel
        strip = _strip(analysis.images[index], maps, norm, cmap, num_layers + 1)
        S = strip.shape[0]
        ax = axes_at(_MAP_LEFT, top, _strip_width(num_layers), MAP_PANEL)
        ax.imshow(strip, extent=(0, strip.shape[1], S, 0), interpolation='nearest')
        titles = [analysis.image_names[index]] + [f'layer {layer + 1}' for layer in range(maps.shape[0])]
        for col, title in enumerate(titles):
            ax.text(col * (S + _MAP_GAP) + S / 2, -0.03 * S, title, ha='center', va='bottom', fontsize=9)
        ax.text(0, -0.2 * S, f'{analysis.name}: {analysis.map_label}', ha='left', va='bottom', fontsize=9,
                fontweight='bold')
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_frame_on(False)
    rows_height = len(analyses) * (MAP_PANEL + _MAP_TITLE) - _MAP_TITLE
    cax = axes_at(_MAP_LEFT + _strip_width(num_layers) + 0.1, _MAP_TOP + _MAP_TITLE + 0.05, 0.12, rows_height - 0.1)
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=cax, label='attention')
    fig.suptitle(f'Sequential attention maps (Fig. 5): {analyses[0].image_names[index]}', fontsize=11,
                 y=1 - 0.06 / height, va='top')
    return _save(fig, path)
