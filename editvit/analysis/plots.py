"""The paper's pictures as PNGs: Fig. 1a (attention to [CLS] vs other tokens), Fig. 1b (the top-left 16 x 16 block of
every layer's attention) and Fig. 5 (the sequential attention maps of one image). With two analyses the models
are drawn side by side (Fig. 1a) or one row each (Fig. 1b, Fig. 5) on shared colour scales.

Figures are built with `matplotlib.figure.Figure` (no pyplot, no global backend state) at a fixed size and DPI,
so a PNG is exactly `figsize * DPI` pixels.
"""
from pathlib import Path
from typing import Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Colormap, LogNorm, Normalize
from matplotlib.figure import Figure

from .analyze import ModelAnalysis

DPI = 100
MAP_PANEL = 1.5  # inches per Fig. 5 panel
# Fig. 5 is drawn once per image, so it is laid out by hand (constrained layout costs more than the drawing):
# margins in inches left (model name), right (colour bar), top (title) and above each row (layer numbers)
_MAP_LEFT, _MAP_RIGHT, _MAP_TOP, _MAP_TITLE = 0.45, 1.15, 0.35, 0.25
MAP_ALPHA = 0.55  # opacity of the attention over the grey image
BLOCK_PANEL = 1.4  # inches per Fig. 1b panel


def sink_figure_size(num_models: int) -> Tuple[float, float]:
    return 5.0 * num_models, 4.0


def block_figure_size(num_models: int, num_layers: int) -> Tuple[float, float]:
    return BLOCK_PANEL * num_layers + 1.2, BLOCK_PANEL * num_models + 0.7


def maps_figure_size(num_models: int, num_layers: int) -> Tuple[float, float]:
    return _MAP_LEFT + MAP_PANEL * (num_layers + 1) + _MAP_RIGHT, _MAP_TOP + (MAP_PANEL + _MAP_TITLE) * num_models


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def plot_sink(analyses: Sequence[ModelAnalysis], path: Path) -> Path:
    """Fig. 1a: per layer, the attention patch queries give to [CLS], to the most-attended single token, and on
    average to each other token; log scale, one panel per model on a shared axis."""
    fig = Figure(figsize=sink_figure_size(len(analyses)), layout='constrained')
    axes = fig.subplots(1, len(analyses), sharey=True, squeeze=False)[0]
    for ax, analysis in zip(axes, analyses):
        layers = analysis.metrics['layers']
        x = [layer['layer'] for layer in layers]
        top = np.array([layer['max_token_attention'] for layer in layers])
        if analysis.metrics['has_cls']:
            ax.plot(x, [layer['cls_attention'] for layer in layers], 'o-', color='tab:red', label='to [CLS]')
            other = [layer['other_attention'] for layer in layers]
        else:
            other = top / np.array([layer['max_token_ratio'] for layer in layers])  # the mean of the rest
        ax.plot(x, top, 's--', color='tab:orange', label='to the most-attended token', markersize=4)
        ax.plot(x, other, 'o-', color='tab:blue', label='to each other token (mean)')
        ax.set_yscale('log')
        ax.set_xticks(x)
        ax.set_xlabel('layer')
        ax.grid(True, which='both', alpha=0.3)
        summary = analysis.metrics['summary']
        subtitle = (f'[CLS]/other: {summary["mean_sink_ratio"]:.1f}x on average' if 'mean_sink_ratio' in summary
                    else f'no [CLS] key; top/other: {summary["mean_max_token_ratio"]:.1f}x on average')
        ax.set_title(f'{analysis.name}\n{subtitle}', fontsize=10)
        ax.legend(fontsize=8)
    axes[0].set_ylabel('attention from patch queries')
    fig.suptitle(f'Attention sink (Fig. 1a), {analyses[0].metrics["num_images"]} images', fontsize=11)
    return _save(fig, path)


def plot_blocks(analyses: Sequence[ModelAnalysis], path: Path) -> Path:
    """Fig. 1b: the top-left block of every layer's attention matrix (rows = queries, columns = keys), averaged over
    heads and images, one row per model, one logarithmic colour scale."""
    num_layers = max(a.block.shape[0] for a in analyses)
    fig = Figure(figsize=block_figure_size(len(analyses), num_layers), layout='constrained')
    axes = fig.subplots(len(analyses), num_layers, squeeze=False)
    blocks = [a.block.numpy() for a in analyses]
    low = max(min(float(b[b > 0].min()) for b in blocks), 1e-4)
    norm = LogNorm(vmin=low, vmax=max(float(b.max()) for b in blocks))
    image = None
    for row, (analysis, block) in enumerate(zip(analyses, blocks)):
        first = 'CLS' if analysis.metrics['has_cls'] else 'p0'
        for col in range(num_layers):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col >= block.shape[0]:
                ax.axis('off')
                continue
            image = ax.imshow(block[col].clip(min=low), norm=norm, cmap='viridis', interpolation='nearest')
            ax.set_xticks([0])
            ax.set_xticklabels([first], fontsize=7)
            if row == 0:
                ax.set_title(f'layer {col + 1}', fontsize=9)
        axes[row, 0].set_ylabel(analysis.name, fontsize=8)
    fig.colorbar(image, ax=axes, shrink=0.9, label='attention')
    b = blocks[0].shape[-1]
    fig.suptitle(f'Top-left {b}x{b} block of each layer\'s attention (Fig. 1b): rows = queries, columns = keys',
                 fontsize=11)
    return _save(fig, path)


def _overlay(gray: np.ndarray, values: np.ndarray, norm: Normalize, cmap: Colormap) -> np.ndarray:
    """The attention map (h, w) upsampled bilinearly to the image and blended over its grey version: (H, W, 3)."""
    up = F.interpolate(torch.from_numpy(values)[None, None], size=gray.shape, mode='bilinear', align_corners=False)
    colour = cmap(norm(up[0, 0].numpy()))[..., :3]  # (H, W, 3)
    return (1 - MAP_ALPHA) * gray[..., None] + MAP_ALPHA * colour


def plot_sequential_maps(analyses: Sequence[ModelAnalysis], index: int, path: Path) -> Path:
    """Fig. 5 for image `index`: the crop the model saw, then one overlay per layer; one row per model, each row
    with its own colour bar from 0 to its largest value, at least twice the uniform level (so uniform attention
    is a middle colour, and narrowing shows as growing peaks)."""
    num_layers = max(a.maps.shape[1] for a in analyses)
    width, height = maps_figure_size(len(analyses), num_layers)
    fig = Figure(figsize=(width, height))
    cmap = colormaps['jet']

    def axes_at(left: float, top: float, w: float, h: float):  # inches from the top-left corner
        return fig.add_axes((left / width, 1 - (top + h) / height, w / width, h / height))

    for row, analysis in enumerate(analyses):
        top = _MAP_TOP + row * (MAP_PANEL + _MAP_TITLE) + _MAP_TITLE
        crop = analysis.images[index]  # (H, W, 3)
        H, W = crop.shape[:2]
        gray = crop.mean(axis=-1)  # (H, W)
        maps = analysis.maps[index].numpy()  # (L, h, w)
        norm = Normalize(vmin=0, vmax=max(float(maps.max()), 2 / maps[0].size))
        # one image per row (the crop, then the overlays side by side): far cheaper to draw than an axes per panel
        panels = [crop] + [_overlay(gray, m, norm, cmap) for m in maps]
        panels += [np.ones_like(crop)] * (num_layers + 1 - len(panels))
        gap = np.ones((H, max(W // 40, 1), 3))  # a white line between panels
        strip = np.concatenate([p for panel in panels for p in (panel, gap)][:-1], axis=1)  # (H, ~(L+1) W, 3)
        ax = axes_at(_MAP_LEFT, top, MAP_PANEL * (num_layers + 1), MAP_PANEL)
        ax.imshow(strip, extent=(0, strip.shape[1], H, 0), interpolation='antialiased')
        titles = [analysis.image_names[index]] + [f'layer {layer + 1}' for layer in range(maps.shape[0])]
        for col, title in enumerate(titles):
            ax.text(col * (W + gap.shape[1]) + W / 2, -0.03 * H, title, ha='center', va='bottom', fontsize=9)
        ax.set_ylabel(f'{analysis.name}\n{analysis.map_label}', fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_frame_on(False)
        cax = axes_at(_MAP_LEFT + (num_layers + 1) * MAP_PANEL + 0.1, top + 0.05, 0.12, MAP_PANEL - 0.1)
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=cax, label='attention')
    fig.suptitle(f'Sequential attention maps (Fig. 5): {analyses[0].image_names[index]}', fontsize=11,
                 y=1 - 0.06 / height, va='top')
    return _save(fig, path)
