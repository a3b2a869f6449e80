"""AugmentOptions: one frozen value for the train augmentation, built from a training config and applied by both the
PIL path and the tensor path."""
import dataclasses
import random

import numpy as np
import pytest
import torch
from PIL import Image

from editvit.data import AugmentOptions, create_train_transform
from editvit.data.batch_augment import BatchAugment
from editvit.train import TrainConfig

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
PIXELS = np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8)  # (H, W, 3)


def test_options_come_from_the_training_config_keys():
    cfg = TrainConfig(crop='src', hflip=0.25, three_augment=False, color_jitter=0.0)
    options = AugmentOptions.from_config(cfg, 'bilinear')
    assert options == AugmentOptions(crop='src', hflip=0.25, three_augment=False, color_jitter=0.0,
                                     interpolation='bilinear')
    assert AugmentOptions.from_config(TrainConfig(), 'bicubic') == AugmentOptions()  # the same defaults (Table 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.crop = 'rrc'
    with pytest.raises(ValueError, match=r"crop must be one of \('rrc', 'src', 'none'\), got 'center'"):
        AugmentOptions(crop='center')


# the pixels both paths gave for seed 7 when each took the options as separate arguments: a change of how the
# options travel must not move them (torch, timm and kornia as pinned in pyproject.toml)
@pytest.mark.parametrize('options, pil, tensor', [
    (AugmentOptions(),
     (-529.651, [-1.3039, -0.3294, 0.0458]),
     (445.643, [0.4732, 0.3785, 0.6707, 0.123, -0.1754, -0.1047])),
    (AugmentOptions(crop='src', three_augment=False, color_jitter=0.4, interpolation='bilinear'),
     (-141.251, [-1.0882, -0.3451, 0.1634]),
     (296.795, [-0.0207, -0.6121, 1.0529, -0.9926, -0.8862, -1.0])),
])
def test_both_paths_give_the_recorded_pixels_for_a_seed(options, pil, tensor):
    torch.manual_seed(7), random.seed(7)
    x = create_train_transform((16, 16), MEAN, STD, options)(Image.fromarray(PIXELS))  # (3, 16, 16)
    assert x.sum().item() == pytest.approx(pil[0], abs=1e-2)
    assert x[:, 5, 5].tolist() == pytest.approx(pil[1], abs=1e-4)
    torch.manual_seed(7)
    batch = torch.from_numpy(PIXELS).permute(2, 0, 1).expand(2, -1, -1, -1)  # (2, 3, 20, 20) uint8
    y = BatchAugment((16, 16), MEAN, STD, options)(batch)  # (2, 3, 16, 16)
    assert y.sum().item() == pytest.approx(tensor[0], abs=1e-2)
    assert y[:, :, 5, 5].flatten().tolist() == pytest.approx(tensor[1], abs=1e-4)


@pytest.mark.parametrize('hflip', [0.0, 1.0])
def test_crop_none_is_the_evaluated_image_on_both_paths(hflip):
    options = AugmentOptions(crop='none', hflip=hflip, three_augment=False, color_jitter=0.0)
    square = PIXELS[2:18, 2:18]  # (16, 16, 3): the model's size, so nothing is resized
    expected = (torch.from_numpy(square).permute(2, 0, 1).float() / 255
                - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)  # (3, 16, 16)
    expected = expected.flip(-1) if hflip else expected
    for seed in range(3):  # no random crop: every seed gives the same image
        torch.manual_seed(seed), random.seed(seed)
        x = create_train_transform((16, 16), MEAN, STD, options)(Image.fromarray(square))  # (3, 16, 16)
        torch.testing.assert_close(x, expected, atol=1e-5, rtol=0)
        batch = torch.from_numpy(square).permute(2, 0, 1).expand(2, -1, -1, -1)  # (2, 3, 16, 16) uint8
        torch.testing.assert_close(BatchAugment((16, 16), MEAN, STD, options)(batch), expected.expand(2, -1, -1, -1),
                                   atol=1e-5, rtol=0)
