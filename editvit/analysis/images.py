"""Images for the analysis: files, folders or scikit-image's offline sample photos, prepared as the model expects."""
import os
import re
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from PIL import Image
from timm.data import create_transform, resolve_data_config

from ..data.decode import read_rgb
from ..errors import DataError

# scikit-image ships these photos with the package, so the analysis runs offline
SAMPLE_IMAGES = ('chelsea', 'coffee', 'astronaut', 'rocket')
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.tif', '.tiff', '.webp', '.ppm')

NamedImage = Tuple[str, Image.Image]


def sample_images() -> List[NamedImage]:
    """scikit-image's sample photos: chelsea the cat, coffee, astronaut, rocket."""
    try:
        import skimage.data
    except ImportError as e:
        raise DataError(f"the default sample photos come from scikit-image ({e}): pip install "
                               f"'editvit[plots]', or pass --images FILES") from e
    return [(name, Image.fromarray(getattr(skimage.data, name)()).convert('RGB')) for name in SAMPLE_IMAGES]


def find_image_files(paths: Sequence[Union[str, Path]]) -> List[Path]:
    """Expand folders to the image files in them and in their subfolders, as torchvision's ImageFolder and timm's
    ImageDataset read a folder: files with an image suffix (IMAGE_SUFFIXES, any case), sorted by their path inside
    the folder; other files are left out. Links to folders are not followed (a link to a parent would loop). Files
    are kept as given."""
    files: List[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted((Path(top) / name for top, _, names in os.walk(path) for name in names
                            if Path(name).suffix.lower() in IMAGE_SUFFIXES and (Path(top) / name).is_file()),
                           key=lambda p: p.relative_to(path).parts)
            if not found:
                raise FileNotFoundError(f'no image files ({", ".join(IMAGE_SUFFIXES)}) in folder {str(path)!r} or '
                                        f'its subfolders')
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f'image {str(path)!r} does not exist')
    return files


def load_image(path: Union[str, Path]) -> Image.Image:
    """Decode one image as 8-bit RGB (`read_rgb`: bombs, truncated files and unscalable pixels refused), or raise
    DataError naming the file."""
    return read_rgb(path)


def load_images(paths: Optional[Sequence[Union[str, Path]]] = None) -> List[NamedImage]:
    """The named images at paths (files or folders), or the scikit-image samples when paths is empty or None."""
    if not paths:
        return sample_images()
    return [(path.stem, load_image(path)) for path in find_image_files(paths)]


def data_config(model: nn.Module) -> dict:
    """The model's pretrained_cfg data settings (mean, std, crop_pct, interpolation), with the input size the model
    was built for (pretrained_cfg keeps the registered size, e.g. 224, when the model is created at img_size=32)."""
    cfg = resolve_data_config(model=model)
    img_size = getattr(getattr(model, 'patch_embed', None), 'img_size', None)
    if img_size is not None:
        cfg['input_size'] = (cfg['input_size'][0], *img_size)
    return cfg


def model_transform(model: nn.Module):
    """timm's evaluation transform for the model: resize, centre crop to its input size, normalise."""
    return create_transform(**data_config(model), is_training=False)


def images_to_batch(images: Sequence[NamedImage], model: nn.Module) -> torch.Tensor:
    """(B, C, H, W) model input from the images."""
    transform = model_transform(model)
    return torch.stack([transform(image) for _, image in images])


def denormalise(x: torch.Tensor, model: nn.Module) -> np.ndarray:
    """Model input (B, C, H, W) back to displayable RGB (B, H, W, 3) in [0, 1]: the crop the model saw."""
    cfg = data_config(model)
    mean = torch.tensor(cfg['mean']).view(1, -1, 1, 1)
    std = torch.tensor(cfg['std']).view(1, -1, 1, 1)
    return (x * std + mean).clamp(0, 1).permute(0, 2, 3, 1).numpy()  # (B, H, W, 3)


def safe_file_name(name: str) -> str:
    """name with every run of characters other than letters, digits, '_', '.' and '-' made one '_' (an image's name
    as a picture's file name)."""
    return re.sub(r'[^A-Za-z0-9_.-]+', '_', name)
