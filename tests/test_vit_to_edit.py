"""Converting a pretrained ViT with [CLS] (DINOv2 here) into an EDIT of the same size."""
import os
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import load_file

import editvit  # noqa: F401  registers EDIT
from editvit import vit_to_edit

DINOV2_FILE = 'dinov2_vits14_imgfocus.safetensors'
SIZE = dict(img_size=28, patch_size=7, embed_dim=48, depth=3, num_heads=3)


def _edit_like(**kwargs):
    return timm.create_model('edit_small_patch16_224', num_classes=0, **kwargs).eval()


def _encoder_tokens(edit, x):
    return edit.forward_intermediates(x, output_fmt='NLC', intermediates_only=True)  # per layer (B, N, D)


@pytest.mark.parametrize('name', ['vit_small_patch14_dinov2', 'vit_small_patch14_reg4_dinov2'])
def test_encoder_reproduces_the_vit_blocks_on_the_patch_tokens(name):
    torch.manual_seed(0)
    vit = timm.create_model(name, num_classes=0, init_values=0.1, **SIZE).eval()
    with torch.no_grad():
        for p in vit.parameters():
            p.normal_(0, 0.2)
    edit = _edit_like(init_values=0.1, **SIZE)
    edit.load_state_dict(vit_to_edit(vit.state_dict(), edit))
    torch.testing.assert_close(edit.cls_token.flatten(), vit.cls_token.flatten(), rtol=0, atol=0)
    x = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        tokens = vit._pos_embed(vit.patch_embed(x))[:, vit.num_prefix_tokens:]  # (B, N, D): patches only
        for block, encoder in zip(vit.blocks, _encoder_tokens(edit, x)):
            tokens = block(tokens)
            torch.testing.assert_close(encoder, tokens, rtol=0, atol=0)


def _dinov2_path() -> Path:
    folder = os.environ.get('EDITVIT_MODELS')
    if not folder or not (Path(folder) / DINOV2_FILE).is_file():
        pytest.skip(f'set EDITVIT_MODELS to a folder holding {DINOV2_FILE} to check the real model')
    return Path(folder) / DINOV2_FILE


def test_real_dinov2_converts_strictly_and_keeps_its_trunk():
    state_dict = load_file(str(_dinov2_path()))
    edit = timm.create_model('edit_small_patch16_224', patch_size=14, init_values=1.0, num_classes=0).eval()
    converted = vit_to_edit(state_dict, edit)
    edit.load_state_dict(converted)  # strict: every key fits
    assert edit.pos_embed.shape == (1, 256, 384)
    torch.testing.assert_close(edit.pos_embed, state_dict['pos_embed'][:, 1:], rtol=0, atol=0)
    torch.testing.assert_close(edit.blocks[11].ls2.gamma, state_dict['blocks.11.ls2.gamma'], rtol=0, atol=0)
