"""Reading image files: high bit depths scaled, not clipped; bombs, truncated files and wide masks refused."""
import numpy as np
import pytest
from PIL import Image

from editvit.data.decode import MAX_PIXELS, read_rgb
from editvit.errors import DataError
from editvit.segmentation.folder import load_mask


def test_16_bit_grey_png_is_scaled_to_8_bits(tmp_path):
    values = np.array([[0, 257, 32896], [65535, 1000, 51400]], dtype=np.uint16)  # (2, 3)
    Image.fromarray(values).save(tmp_path / 'deep.png')
    assert Image.open(tmp_path / 'deep.png').mode.startswith('I')
    rgb = np.asarray(read_rgb(tmp_path / 'deep.png'))  # (2, 3, 3)
    assert rgb.shape == (2, 3, 3)
    np.testing.assert_array_equal(rgb[..., 0], [[0, 1, 128], [255, 4, 200]])


def test_float_tiff_in_0_1_is_scaled(tmp_path):
    values = np.array([[0.0, 0.5], [1.0, 0.25]], dtype=np.float32)
    Image.fromarray(values, 'F').save(tmp_path / 'float.tif')
    np.testing.assert_array_equal(np.asarray(read_rgb(tmp_path / 'float.tif'))[..., 1], [[0, 128], [255, 64]])


def test_float_tiff_out_of_range_is_refused(tmp_path):
    Image.fromarray(np.array([[-3.0, 900.0]], dtype=np.float32), 'F').save(tmp_path / 'hdr.tif')
    with pytest.raises(DataError, match=r"hdr.tif.*range over \[-3, 900\]"):
        read_rgb(tmp_path / 'hdr.tif')


def test_decompression_bomb_is_a_bad_image(tmp_path):
    side = int(MAX_PIXELS ** 0.5) + 100
    Image.new('1', (side, side)).save(tmp_path / 'bomb.png')  # a few KB on disk
    assert (tmp_path / 'bomb.png').stat().st_size < 2_000_000
    with pytest.raises(DataError, match='bomb.png'):
        read_rgb(tmp_path / 'bomb.png')


def test_truncated_file_is_a_bad_image(tmp_path):
    Image.new('RGB', (64, 64), (10, 20, 30)).save(tmp_path / 'ok.jpg')
    (tmp_path / 'cut.jpg').write_bytes((tmp_path / 'ok.jpg').read_bytes()[:200])
    with pytest.raises(DataError, match='cut.jpg'):
        read_rgb(tmp_path / 'cut.jpg')


def test_8_bit_rgb_is_unchanged(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / 'rgb.png')
    np.testing.assert_array_equal(np.asarray(read_rgb(tmp_path / 'rgb.png')), pixels)


def test_16_bit_mask_labels_above_255_are_refused_not_wrapped(tmp_path):
    Image.fromarray(np.array([[0, 257], [511, 3]], dtype=np.uint16)).save(tmp_path / 'wide.png')
    with pytest.raises(DataError, match='wide.png.*from 0 to 511'):
        load_mask(str(tmp_path / 'wide.png'))
    Image.fromarray(np.array([[0, 7], [255, 3]], dtype=np.uint16)).save(tmp_path / 'narrow.png')
    np.testing.assert_array_equal(load_mask(str(tmp_path / 'narrow.png')), [[0, 7], [255, 3]])
