"""What the pictures call an image: its class (the name of the folder it was read from, an ImageNet synset id
spelled out) or its file name, and what a model with a classifier head predicts for it.
"""
from pathlib import Path
from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
from timm.data import ImageNetInfo, infer_imagenet_subset

from .images import NamedImage, images_to_batch

PathLike = Union[str, Path]


def _short(description: str) -> str:
    """ImageNet descriptions list synonyms ('tabby, tabby cat'): the first one."""
    return description.split(',')[0]


def image_titles(names: Sequence[str], paths: Optional[Sequence[PathLike]] = None) -> List[str]:
    """One title per image: 'class (file)' for an image read from a folder named after its class (an ImageNet
    synset id such as n02123045 spelled out: 'tabby (000002)'), else the file name.

    Args:
        names: The images' names (file stems, or the sample photos' names).
        paths: The image files (None for the sample photos).
    """
    if paths is None:
        return list(names)
    info = ImageNetInfo()
    titles = []
    for name, path in zip(names, map(Path, paths)):
        folder = path.parent.name
        if folder.startswith('n') and folder[1:].isdigit() and len(folder) == 9:
            try:
                folder = _short(info.label_name_to_description(folder))
            except (KeyError, ValueError):
                pass
        titles.append(f'{folder} ({name})' if folder else name)
    return titles


def class_names(model: nn.Module) -> Optional[List[str]]:
    """The names of the model's classes: ImageNet's for a head of an ImageNet size (1000, 21k, ...), else
    'class 0', 'class 1', ...; None when the model has no classifier head."""
    num_classes = getattr(model, 'num_classes', 0) or 0
    if num_classes <= 0:
        return None
    subset = infer_imagenet_subset(model)
    if subset is not None:
        info = ImageNetInfo(subset)
        return [_short(info.index_to_description(i)) for i in range(num_classes)]
    return [f'class {i}' for i in range(num_classes)]


@torch.no_grad()
def predictions(model: nn.Module, images: Sequence[NamedImage], batch_size: int = 16) -> Optional[List[str]]:
    """The model's top-1 class and its probability for each image, e.g. 'tabby 62%'; None without a head."""
    names = class_names(model)
    if names is None:
        return None
    out = []
    for start in range(0, len(images), batch_size):
        x = images_to_batch(images[start:start + batch_size], model)  # (B, C, H, W)
        probs = model(x).float().softmax(dim=-1)  # (B, num_classes)
        p, index = probs.max(dim=-1)  # (B,)
        out += [f'{names[i]} {100 * q:.0f}%' if q >= 0.01 else f'{names[i]} {100 * q:.1g}%'
                for q, i in zip(p.tolist(), index.tolist())]
    return out
