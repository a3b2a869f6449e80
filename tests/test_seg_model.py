"""Segmenter on EDIT and DeiT3 backbones: mask shapes, the Mask Transformer's parts, weights from classification."""
import pytest
import timm
import torch
import torch.nn.functional as F

from editvit.segmentation import LinearDecoder, MaskTransformer, Segmenter, create_segmenter
from editvit.weights import save_model

TINY = dict(patch_size=8, embed_dim=32, depth=2, num_heads=2)


@pytest.mark.parametrize('backbone', ['edit_tiny_patch16_224', 'deit3_small_patch16_224'])
@pytest.mark.parametrize('decoder', ['mask_transformer', 'linear'])
def test_masks_have_the_input_size_and_are_bilinear_upsamplings_of_patch_masks(backbone, decoder):
    model = create_segmenter(backbone, 5, 64, decoder=decoder, backbone_kwargs=TINY).eval()
    x = torch.randn(2, 3, 64, 64)
    tokens = model.forward_features(x)
    assert tokens.shape == (2, 64, 32)  # the 8x8 patch tokens; the [CLS] (EDIT's final one, DeiT3's) dropped
    with torch.no_grad():
        patch_masks = model.decoder(tokens, (8, 8))  # (2, 5, 8, 8)
        masks = model(x)
    assert patch_masks.shape == (2, 5, 8, 8)
    assert masks.shape == (2, 5, 64, 64)
    assert torch.allclose(masks, F.interpolate(patch_masks, size=(64, 64), mode='bilinear', align_corners=False))


def test_patch_tokens_are_the_backbone_tokens_after_its_prefix():
    model = create_segmenter('deit3_small_patch16_224', 3, 32, backbone_kwargs=TINY).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.forward_features(x), model.encoder.forward_features(x)[:, 1:])


def test_mask_transformer_follows_segmenter():
    model = create_segmenter('edit_tiny_patch16_224', 7, 32, backbone_kwargs=dict(TINY, embed_dim=128, num_heads=2))
    dec = model.decoder
    assert isinstance(dec, MaskTransformer)
    assert len(dec.blocks) == 2
    assert dec.blocks[0].attn.num_heads == 2  # width 128 / 64
    assert dec.blocks[0].mlp.fc1.out_features == 4 * 128
    assert dec.blocks[0].attn.attn_drop.p == 0.1 and dec.blocks[0].mlp.drop1.p == 0.1
    assert dec.cls_emb.shape == (1, 7, 128)
    dec.eval()
    scores = []
    dec.mask_norm.register_forward_hook(lambda m, inp, out: scores.append(inp[0]))
    masks = dec(torch.randn(3, 16, 128), (4, 4))  # (3, 7, 4, 4)
    # a LayerNorm over the classes (unit weight, zero bias at init), then the 4x4 grid in row-major order
    expected = F.layer_norm(scores[0], (7,)).transpose(1, 2).reshape(3, 7, 4, 4)
    assert torch.allclose(masks, expected, atol=1e-6)
    assert torch.allclose(masks.mean(1), torch.zeros(3, 4, 4), atol=1e-5)


def test_cosine_scores_before_the_mask_norm_are_bounded():
    dec = MaskTransformer(4, 16, 16, num_heads=1).eval()
    scores = []
    dec.mask_norm.register_forward_hook(lambda m, inp, out: scores.append(inp[0]))
    dec(torch.randn(2, 9, 16), (3, 3))
    assert scores[0].shape == (2, 9, 4)
    assert scores[0].abs().max() <= 1 + 1e-5  # scalar products of unit vectors


def test_linear_decoder_is_a_per_patch_classifier():
    dec = LinearDecoder(3, 8)
    tokens = torch.randn(1, 4, 8)
    out = dec(tokens, (2, 2))
    assert torch.allclose(out[0, :, 1, 0], dec.head(tokens[0, 2]))  # row 1, column 0 = token 2


def test_backbone_drop_path_and_resolution():
    model = create_segmenter('edit_tiny_patch16_224', 3, 48, backbone_kwargs=TINY, drop_path=0.1)
    assert model.img_size == (48, 48)
    assert model.encoder.blocks[-1].drop_path1.drop_prob == pytest.approx(0.1)


def test_backbone_from_an_editvit_classification_checkpoint_at_a_new_resolution(tmp_path):
    classifier = timm.create_model('edit_tiny_patch16_224', num_classes=10, img_size=32, **TINY)
    save_model(classifier, tmp_path / 'edit.safetensors')
    model = create_segmenter('edit_tiny_patch16_224', 3, 64, backbone_kwargs=TINY,
                             backbone_weights=tmp_path / 'edit.safetensors')
    enc = model.encoder
    assert enc.pos_embed.shape == (1, 64, 32)  # 4x4 grid resampled to 8x8
    grid = classifier.pos_embed.reshape(1, 4, 4, 32).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(8, 8), mode='bicubic', align_corners=False, antialias=True)
    assert torch.allclose(enc.pos_embed, expected.permute(0, 2, 3, 1).reshape(1, 64, 32), atol=1e-5)
    own, source = enc.state_dict(), classifier.state_dict()
    assert set(source) - set(own) == {'head.weight', 'head.bias'}  # the classifier is dropped
    for k in own:
        if k != 'pos_embed':
            assert torch.equal(own[k], source[k]), k


def test_edit_backbone_from_a_timm_deit3_checkpoint(tmp_path):
    deit3 = timm.create_model('deit3_small_patch16_224', num_classes=1000, img_size=32, **TINY)
    torch.save(deit3.state_dict(), tmp_path / 'deit3.pth')
    for backbone in ('edit_tiny_patch16_224', 'deit3_small_patch16_224'):
        model = create_segmenter(backbone, 3, 64, backbone_kwargs=TINY, backbone_weights=tmp_path / 'deit3.pth')
        assert model.encoder.pos_embed.shape == (1, 64, 32)  # DeiT3's and EDIT's are patch-only: 4x4 -> 8x8
        assert torch.equal(model.encoder.blocks[0].mlp.fc1.weight, deit3.blocks[0].mlp.fc1.weight)


def test_segmenter_weights_round_trip(tmp_path):
    model = create_segmenter('edit_tiny_patch16_224', 3, 32, backbone_kwargs=TINY).eval()
    save_model(model, tmp_path / 'seg.safetensors')
    other = create_segmenter('edit_tiny_patch16_224', 3, 32, backbone_kwargs=TINY).eval()
    from editvit.weights import load_model_weights
    load_model_weights(other, tmp_path / 'seg.safetensors')
    x = torch.randn(1, 3, 32, 32)
    assert isinstance(other, Segmenter)
    assert torch.equal(model(x), other(x))
