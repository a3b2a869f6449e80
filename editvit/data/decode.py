"""Decoding one image file into 8-bit RGB, the way every editvit reader does it.

An image that cannot be read correctly is an error, never silently wrong pixels: a decompression bomb (far more
pixels than its file size suggests) is a bad image like a truncated one, and 16-bit or floating-point images are
scaled to 8 bits rather than clipped (PIL's own `convert('RGB')` turns a 16-bit PNG almost white and a float TIFF
black).
"""
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image

from ..errors import DataError

# The pixel count above which an image is refused: PIL's decompression-bomb warning limit (89M pixels, about
# 9,500 x 9,500), far beyond any image a ViT data set holds. PIL itself only refuses at twice that.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485


class _PixelError(ValueError):
    """Pixels that cannot be scaled to 8 bits."""


def _to_uint8(array: np.ndarray, mode: str) -> np.ndarray:
    """Scale a high-bit-depth or float single-channel image to 0..255."""
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.floating):
        finite = array[np.isfinite(array)]
        top = float(finite.max()) if finite.size else 0.0
        low = float(finite.min()) if finite.size else 0.0
        if low < 0 or top > 255:
            raise _PixelError(f'float pixels range over [{low:.3g}, {top:.3g}]: expected [0, 1] or [0, 255]')
        scale = 255.0 if top <= 1.0 else 1.0
        return np.clip(np.nan_to_num(array) * scale + 0.5, 0, 255).astype(np.uint8)
    top = int(array.max()) if array.size else 0
    if array.min() < 0 or top > 65535:
        raise _PixelError(f'{mode} pixels range over [{int(array.min())}, {top}]: expected 16-bit values')
    return ((array.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)  # 65535 -> 255, 257 -> 1


def read_rgb(path: Union[str, Path]) -> Image.Image:
    """Decode an image file fully (a truncated file fails here, not later) as 8-bit RGB.

    Raises:
        DataError: the file does not decode, is a decompression bomb, or has pixels that cannot be scaled
            to 8 bits; the message names the file.
    """
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise _PixelError(f'{width}x{height} pixels is more than editvit reads ({MAX_PIXELS:,}); '
                                     f'a decompression bomb or an image to downscale first')
            image.load()
            if image.mode in ('I', 'I;16', 'I;16B', 'I;16L', 'I;16N', 'F'):
                grey = _to_uint8(np.asarray(image), image.mode)  # (H, W)
                return Image.fromarray(grey, 'L').convert('RGB')
            return image.convert('RGB')
    except _PixelError as e:
        raise DataError(f'cannot decode image {str(path)!r}: {e}') from None
    except PermissionError as e:
        raise DataError(f'cannot read image {str(path)!r}: permission denied; check its permissions') from e
    except (OSError, ValueError, Image.DecompressionBombError) as e:  # UnidentifiedImageError is an OSError
        raise DataError(f'cannot decode image {str(path)!r}: {e}') from e
