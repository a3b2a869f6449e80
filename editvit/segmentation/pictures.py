"""Pictures of predictions: the image, the ground truth over it and the prediction over it, side by side."""
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.utils.data import Dataset

from .inference import segment
from .metrics import IGNORE_INDEX
from .segmenter import Segmenter


def palette(num_classes: int, seed: int = 0) -> np.ndarray:
    """A fixed colour per class (num_classes, 3) uint8, the same for every picture."""
    return np.random.default_rng(seed).integers(0, 256, (num_classes, 3)).astype(np.uint8)


def overlay(image: Image.Image, labels: np.ndarray, colours: np.ndarray, alpha: float = 0.5) -> Image.Image:
    """The image with each labelled pixel blended with its class colour; ignored pixels left as they are."""
    x = np.asarray(image.convert('RGB'), dtype=np.float32)  # (H, W, 3)
    shown = labels != IGNORE_INDEX
    colour = colours[np.where(shown, labels, 0)].astype(np.float32)  # (H, W, 3)
    x = np.where(shown[..., None], (1 - alpha) * x + alpha * colour, x)
    return Image.fromarray(x.clip(0, 255).astype(np.uint8))


def comparison(image: Image.Image, truth: np.ndarray, prediction: np.ndarray, colours: np.ndarray,
               gap: int = 4, min_width: int = 96) -> Image.Image:
    """[image | ground truth overlaid | prediction overlaid] with titles; images narrower than min_width are
    enlarged by a whole factor (nearest neighbour, so every label pixel stays a visible block)."""
    panels = [image.convert('RGB'), overlay(image, truth, colours), overlay(image, prediction, colours)]
    factor = -(-min_width // image.width)
    if factor > 1:
        panels = [p.resize((p.width * factor, p.height * factor), Image.NEAREST) for p in panels]
    W, H, title = panels[0].width, panels[0].height, 12
    out = Image.new('RGB', (3 * W + 2 * gap, H + title), 'white')
    draw = ImageDraw.Draw(out)
    for i, (panel, name) in enumerate(zip(panels, ('image', 'ground truth', 'prediction'))):
        out.paste(panel, (i * (W + gap), title))
        draw.text((i * (W + gap) + 1, 0), name, fill='black')
    return out


@torch.no_grad()
def save_predictions(model: Segmenter, dataset: Dataset, transform: Callable, folder: Path, count: int,
                     device: torch.device, stride: Optional[int] = None, ratios: Sequence[float] = (1.0,),
                     flip: bool = False) -> list:
    """Save comparison pictures of the first `count` images of dataset to folder/NNNN.png; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.eval()
    colours = palette(model.num_classes)
    window = model.img_size[0]
    paths = []
    for index in range(min(count, len(dataset))):
        image, truth = dataset[index]
        x, _ = transform((image, truth))
        probs = segment(model, x[None].to(device), window, stride or window, ratios, flip,
                        out_size=truth.shape)  # (1, K, H, W)
        prediction = probs[0].argmax(0).cpu().numpy().astype(np.uint8)  # (H, W)
        path = folder / f'{index:04d}.png'
        comparison(image, truth, prediction, colours).save(path)
        paths.append(path)
    return paths
