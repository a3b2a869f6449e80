"""[CLS] removal at test time: masked as a key, or dropped from the sequence, and the model restored after."""
import pytest
import timm
import torch

from editvit.analysis import extract_attention
from editvit.analysis.cls_removal import cls_removed
from editvit.errors import ConfigError


@pytest.fixture
def vit():
    torch.manual_seed(0)
    return timm.create_model('vit_small_patch14_dinov2', img_size=28, patch_size=7, embed_dim=32, depth=2,
                             num_heads=2, num_classes=0, init_values=1e-1).eval()


def test_masked_cls_receives_no_attention_and_rows_still_sum_to_one(vit):
    x = torch.randn(2, 3, 28, 28)
    with cls_removed(vit, 'mask'):
        maps = extract_attention(vit, x)
    for attention in maps.attention:  # (B, H, 17, 17)
        assert attention.shape == (2, 2, 17, 17)
        assert torch.all(attention[..., 0] == 0)
        torch.testing.assert_close(attention.sum(-1), torch.ones(2, 2, 17))


def test_dropped_cls_equals_the_blocks_run_on_the_patch_tokens_alone(vit):
    x = torch.randn(2, 3, 28, 28)
    with cls_removed(vit, 'drop'):
        tokens = vit.forward_features(x)  # (B, 16, D)
        maps = extract_attention(vit, x)
        assert vit.num_prefix_tokens == 0
    assert [a.shape[-1] for a in maps.attention] == [16, 16]
    with torch.no_grad():
        expected = vit.blocks(vit._pos_embed(vit.patch_embed(x))[:, 1:])
    torch.testing.assert_close(tokens, vit.norm(expected))


def test_model_is_unchanged_after_the_context(vit):
    x = torch.randn(1, 3, 28, 28)
    with torch.no_grad():
        before = vit(x)
        for mode in ('mask', 'drop'):
            with cls_removed(vit, mode):
                vit(x)
        assert vit.num_prefix_tokens == 1 and '_pos_embed' not in vars(vit)
        torch.testing.assert_close(vit(x), before, rtol=0, atol=0)


def test_models_without_cls_are_refused():
    gap = timm.create_model('vit_small_patch16_224', img_size=32, patch_size=8, depth=1, class_token=False,
                            global_pool='avg')
    with pytest.raises(ConfigError, match='no \\[CLS\\] token'):
        with cls_removed(gap, 'mask'):
            pass
