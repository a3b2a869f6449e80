"""Fig. 5 as a PNG: the sequential attention maps of one image, the crop the model saw and one map per layer,
wrapped in rows of at most MAP_COLUMNS layers; one block of rows per model.

One linear scale for every layer would be set by the hottest patch of any layer (a ViT's first layer often
puts 10-50x the uniform level on one patch), and every other layer would read as flat. So each panel is scaled
from 0 to its own peak, and the peak is printed above it as a multiple of uniform attention (1 / patches): the
shape of a map is read from its colours, its strength from its label. A panel whose peak is below
MIN_PEAK x uniform is scaled to that level, so near-uniform attention (a random model) stays a flat middle
colour instead of having its noise stretched to the full range.
"""
import math
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from .analyze import ModelAnalysis
from .figures import DPI, save_figure

MAP_CMAP = 'inferno'  # perceptually uniform, dark at low attention so the attended region stands out
MAP_ALPHA = 0.65  # opacity of the attention over the grey image
MAP_COLUMNS = 6  # layer panels per row: 12 layers -> 2 rows of 6
MIN_PEAK = 2.0  # a panel's scale reaches at least this multiple of uniform attention
_PANEL = 160  # pixels per map panel
_GAP = 8  # pixels between panels
_LABEL = 24  # pixels above each row of panels for the layer labels
_HEADER = 36  # pixels above each model's rows for its name, what the maps show and its prediction
_TOP, _LEFT, _RIGHT, _BOTTOM = 62, 12, 110, 8  # margins: title, left, colour bar, bottom


def _grid(num_layers: int) -> Tuple[int, int, int]:
    """(rows, columns) of layer panels and the side of the image panel, in panel rows (1 or 2)."""
    rows = math.ceil(num_layers / MAP_COLUMNS)
    return rows, min(num_layers, MAP_COLUMNS), min(rows, 2)


def _block_size(num_layers: int) -> Tuple[int, int, int]:
    """Pixel width and height of one model's rows, and the side of its image panel."""
    rows, cols, span = _grid(num_layers)
    side = span * _PANEL + (span - 1) * _LABEL
    return side + 2 * _GAP + cols * (_PANEL + _GAP) - _GAP, rows * (_LABEL + _PANEL), side


def maps_figure_size(num_models: int, num_layers: int) -> Tuple[float, float]:
    """Inches of Fig. 5 for num_models models of up to num_layers layers (a PNG of this size x DPI pixels)."""
    width, height, _ = _block_size(num_layers)
    return (_LEFT + width + _RIGHT) / DPI, (_TOP + num_models * (_HEADER + height) + _BOTTOM) / DPI


def map_scales(maps: torch.Tensor) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each layer's map on its own scale, for maps (L, h, w): the maps divided by their scale, in [0, 1],
    (L, h, w); the scales, (L,); the peaks, (L,). A layer's scale is its peak (largest value), at least MIN_PEAK x
    uniform attention 1 / (h * w)."""
    maps = maps.double().numpy()
    peaks = maps.reshape(len(maps), -1).max(axis=1)  # (L,)
    scales = np.maximum(peaks, MIN_PEAK / maps[0].size)  # (L,)
    return (maps / scales[:, None, None]).clip(0, 1), scales, peaks


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    """(n, H, W) or (n, H, W, 3) arrays to (n, size, size[, 3]), bilinearly."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float()
    x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)  # (n, C, H, W)
    x = F.interpolate(x, size=(size, size), mode='bilinear', antialias=True, align_corners=False)
    x = x[:, 0] if x.shape[1] == 1 else x.permute(0, 2, 3, 1)
    return x.clamp(0, 1).numpy()


def _block(crop: np.ndarray, scaled: np.ndarray, num_layers: int) -> np.ndarray:
    """One model's panels as one RGB image at the pixel size it is drawn at (so matplotlib does not resample):
    the crop on the left, then each layer's scaled map blended over the grey crop, row by row."""
    rows, cols, _ = _grid(num_layers)
    width, height, side = _block_size(num_layers)
    canvas = np.ones((height, width, 3))
    canvas[_LABEL:_LABEL + side, :side] = _resize(crop[None], side)[0]
    grey = _resize(crop[None], _PANEL)[0].mean(axis=-1)[..., None]  # (S, S, 1)
    colour = colormaps[MAP_CMAP](_resize(scaled, _PANEL))[..., :3]  # (L, S, S, 3)
    for layer, overlay in enumerate((1 - MAP_ALPHA) * grey + MAP_ALPHA * colour):
        y, x = _panel_origin(layer, side)
        canvas[y:y + _PANEL, x:x + _PANEL] = overlay
    return canvas


def _times(ratio: float) -> str:
    return f'{ratio:.1f}x' if round(ratio, 1) < 10 else f'{ratio:.0f}x'


def _panel_origin(layer: int, side: int) -> Tuple[int, int]:
    row, col = divmod(layer, MAP_COLUMNS)
    return row * (_LABEL + _PANEL) + _LABEL, side + 2 * _GAP + col * (_PANEL + _GAP)


def maps_figure(analyses: Sequence[ModelAnalysis], index: int, title: Optional[str] = None,
                predictions: Optional[Sequence[Optional[str]]] = None) -> Figure:
    """Fig. 5 for image `index` of the analyses (one block of rows per model).

    Args:
        analyses: The models' analyses of the same images.
        index: Which image.
        title: What to call the image (its class, see `image_titles`); default its name.
        predictions: Per model, its prediction for the image ('tabby 62%') or None.
    """
    num_layers = max(a.maps.shape[1] for a in analyses)
    width, height = maps_figure_size(len(analyses), num_layers)
    block_w, block_h, side = _block_size(num_layers)
    fig = Figure(figsize=(width, height))
    predictions = predictions or [None] * len(analyses)
    title = title or analyses[0].image_names[index]
    patches = {a.maps[index, 0].numel() for a in analyses}  # 1 / patches is uniform attention
    uniform_text = f'1/{patches.pop()}' if len(patches) == 1 else '1 / the number of patches'
    short_title = title if len(title) <= 30 else title[:29] + '…'
    for m, (analysis, prediction) in enumerate(zip(analyses, predictions)):
        top = _TOP + m * (_HEADER + block_h) + _HEADER  # pixels from the top of the figure
        ax = fig.add_axes((_LEFT / (width * DPI), 1 - (top + block_h) / (height * DPI),
                           block_w / (width * DPI), block_h / (height * DPI)))
        scaled, _, peaks = map_scales(analysis.maps[index])
        ax.imshow(_block(analysis.images[index], scaled, num_layers), extent=(0, block_w, block_h, 0),
                  interpolation='nearest')
        uniform = 1 / analysis.maps[index, 0].numel()
        ax.text(side / 2, _LABEL - 5, short_title, ha='center', va='bottom', fontsize=10)
        for layer, peak in enumerate(peaks):
            y, x = _panel_origin(layer, side)
            ax.text(x + _PANEL / 2, y - 5, f'layer {layer + 1}: peak {_times(peak / uniform)}', ha='center',
                    va='bottom', fontsize=9.5)
        header = f'{analysis.name}: {analysis.map_label}'
        if prediction:
            header += f';  predicts {prediction}'
        ax.text(0, -4, header, ha='left', va='bottom', fontsize=10.5, fontweight='bold')
        ax.set_axis_off()
    cax = fig.add_axes(((_LEFT + block_w + 24) / (width * DPI), (_BOTTOM + 10) / (height * DPI),
                        14 / (width * DPI), (height * DPI - _TOP - _BOTTOM - _HEADER - 10) / (height * DPI)))
    bar = fig.colorbar(ScalarMappable(norm=Normalize(0, 1), cmap=MAP_CMAP), cax=cax)
    bar.set_ticks([0, 0.5, 1], labels=['0', '½ peak', 'peak'], fontsize=9)
    fig.suptitle(f'Sequential attention maps (Fig. 5): {title}', fontsize=12, y=1 - 8 / (height * DPI), va='top')
    fig.text(0.5, 1 - 32 / (height * DPI), f'each panel on its own scale, 0 to its peak; peak as a multiple of '
             f'uniform attention ({uniform_text}), at least {MIN_PEAK:.0f}x', ha='center', va='top', fontsize=9.5,
             color='0.3')
    return fig


def plot_sequential_maps(analyses: Sequence[ModelAnalysis], index: int, path: Path, title: Optional[str] = None,
                         predictions: Optional[Sequence[Optional[str]]] = None) -> Path:
    """Fig. 5 for image `index` as a PNG at path (see `maps_figure`)."""
    return save_figure(maps_figure(analyses, index, title, predictions), path)
