"""Sliding-window and multi-scale/flip inference."""
import pytest
import torch
import torch.nn as nn

from editvit.segmentation import MULTI_SCALE_RATIOS, create_segmenter, segment, sliding_window_logits
from editvit.segmentation.inference import window_anchors

TINY = dict(patch_size=8, embed_dim=32, depth=2, num_heads=2)



def tiny_segmenter(backbone='edit_tiny_patch16_224', img_size=32, num_classes=4):
    return create_segmenter(backbone, num_classes, img_size, backbone_kwargs=TINY).eval()


def test_window_anchors_cover_the_side_and_end_flush():
    assert window_anchors(32, 32, 16) == [0]
    assert window_anchors(48, 32, 16) == [0, 16]
    assert window_anchors(50, 32, 32) == [0, 18]
    assert window_anchors(100, 32, 24) == [0, 24, 48, 68]


def test_one_window_covering_the_image_equals_whole_image_inference():
    model = tiny_segmenter()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        whole = model(x)  # (2, 4, 32, 32)
    assert torch.allclose(sliding_window_logits(model, x, 32, 16), whole, atol=1e-6)
    assert torch.allclose(segment(model, x, 32, 16), whole.softmax(1), atol=1e-6)


def test_overlapping_windows_are_averaged():
    # a per-pixel model gives every window the same logits at a pixel, so the average must equal them exactly
    pointwise = nn.Conv2d(3, 5, 1)
    x = torch.randn(1, 3, 48, 70)
    with torch.no_grad():
        expected = pointwise(x)
    assert torch.allclose(sliding_window_logits(pointwise, x, 32, 16), expected, atol=1e-5)
    # and a model whose logit is 1 in every window position sees each pixel counted once
    ones = lambda crops: torch.ones(crops.shape[0], 1, *crops.shape[-2:])  # noqa: E731
    assert torch.equal(sliding_window_logits(ones, x, 32, 10), torch.ones(1, 1, 48, 70))


def test_small_images_are_upsized_to_the_window_and_results_come_at_the_asked_size():
    model = tiny_segmenter()
    probs = segment(model, torch.randn(1, 3, 20, 40), 32, 32, out_size=(25, 50))
    assert probs.shape == (1, 4, 25, 50)
    assert torch.allclose(probs.sum(1), torch.ones(1, 25, 50), atol=1e-5)
    with pytest.raises(ValueError, match='smaller than the 32x32 window'):
        sliding_window_logits(model, torch.randn(1, 3, 20, 40), 32, 32)


def test_flip_augmentation_is_flip_equivariant():
    model = tiny_segmenter()
    half = torch.randn(1, 3, 32, 16)
    symmetric = torch.cat([half, half.flip(-1)], dim=-1)  # (1, 3, 32, 32), its own mirror image
    probs = segment(model, symmetric, 32, 32, flip=True)
    plain = segment(model, symmetric, 32, 32)
    assert not torch.allclose(plain, plain.flip(-1), atol=1e-4)  # the model alone is not mirror-symmetric
    assert torch.allclose(probs, probs.flip(-1), atol=1e-6)
    x = torch.randn(1, 3, 32, 48)
    assert torch.allclose(segment(model, x.flip(-1), 32, 16, flip=True),
                          segment(model, x, 32, 16, flip=True).flip(-1), atol=1e-6)


def test_multi_scale_averages_probabilities_over_every_view():
    model = tiny_segmenter()
    x = torch.randn(1, 3, 32, 40)
    probs = segment(model, x, 32, 32, ratios=MULTI_SCALE_RATIOS, flip=True)
    assert probs.shape == (1, 4, 32, 40)
    assert torch.allclose(probs.sum(1), torch.ones(1, 32, 40), atol=1e-5)
    views = [segment(model, x, 32, 32, ratios=(r,), flip=True) for r in MULTI_SCALE_RATIOS]
    assert torch.allclose(probs, torch.stack(views).mean(0), atol=1e-6)
    # a constant per-pixel model is scale-invariant: all views agree with single scale
    pointwise = nn.Conv2d(3, 3, 1)
    const = torch.ones(1, 3, 40, 56)
    assert torch.allclose(segment(pointwise, const, 32, 16, ratios=MULTI_SCALE_RATIOS, flip=True),
                          segment(pointwise, const, 32, 16), atol=1e-5)
