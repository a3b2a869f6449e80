"""Loading EDIT weights from local files through timm and editvit: round trips, resampling, DeiT3, bad files."""
import os
import pickle

import pytest
import timm
import torch
from timm.layers import resample_abs_pos_embed

from editvit import CheckpointError, vit_to_edit, load_model_weights, read_state_dict, save_model

from .common import tiny_edit

TINY = dict(patch_size=8, embed_dim=48, depth=3, num_heads=3, num_classes=10)


def _create(path, img_size=32, name='edit_tiny_patch16_224', **kw):
    """timm's way to load a local file; num_classes in the overlay tells timm the file's head fits (else it drops it)."""
    kw = {**TINY, 'img_size': img_size, **kw}
    overlay = dict(file=str(path), num_classes=kw['num_classes'])
    return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, **kw).eval()


@pytest.mark.parametrize('suffix', ['.safetensors', '.pth'])
def test_save_and_load_through_timm_gives_identical_logits(tmp_path, suffix):
    model = tiny_edit().eval()
    path = save_model(model, tmp_path / f'model{suffix}')
    assert sorted(os.listdir(tmp_path)) == [path.name]  # written atomically: no temporary file left behind
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(_create(path)(x), model(x))
    assert torch.equal(load_model_weights(tiny_edit().eval(), path)(x), model(x))


def test_training_checkpoint_with_wrappers_is_unwrapped(tmp_path):
    model = tiny_edit().eval()
    wrapped = {'model': {f'module._orig_mod.{k}': v for k, v in model.state_dict().items()}, 'epoch': 3}
    torch.save(wrapped, tmp_path / 'ckpt.pth')
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(_create(tmp_path / 'ckpt.pth')(x), model(x))


def test_position_embedding_is_resampled_to_a_new_resolution(tmp_path):
    model = tiny_edit()
    path = save_model(model, tmp_path / 'm.safetensors')
    bigger = _create(path, img_size=48)  # 4x4 -> 6x6 patches, like 224 -> 384 fine-tuning
    expected = resample_abs_pos_embed(model.pos_embed.detach(), new_size=[6, 6], num_prefix_tokens=0)
    assert bigger.pos_embed.shape == (1, 36, 48)
    torch.testing.assert_close(bigger.pos_embed, expected)
    assert torch.equal(bigger.blocks[1].mlp.fc1.weight, model.blocks[1].mlp.fc1.weight)
    assert bigger(torch.randn(1, 3, 48, 48)).shape == (1, 10)


def test_checkpoint_that_does_not_fit_lists_the_keys(tmp_path):
    sd = tiny_edit().state_dict()
    sd.pop('decoder.k.weight')
    sd['extra.weight'] = torch.zeros(1)
    sd['head.weight'] = torch.zeros(5, 48)
    with pytest.raises(CheckpointError) as e:
        load_model_weights(tiny_edit(), sd)
    msg = str(e.value)
    assert 'missing keys (1): decoder.k.weight' in msg and 'unexpected keys (1): extra.weight' in msg
    assert 'head.weight: checkpoint (5, 48) vs model (10, 48)' in msg


def test_pickled_code_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ('echo pwned > ' + str(tmp_path / 'pwned'),))

    with open(tmp_path / 'evil.pth', 'wb') as f:
        pickle.dump({'model': Payload()}, f)
    with pytest.raises(CheckpointError, match='refusing to load'):
        read_state_dict(tmp_path / 'evil.pth')
    assert not (tmp_path / 'pwned').exists()


def test_not_a_checkpoint_is_named(tmp_path):
    (tmp_path / 'junk.safetensors').write_bytes(b'not a checkpoint')
    (tmp_path / 'junk.pth').write_text('hello')
    with pytest.raises(CheckpointError, match='junk.safetensors.*not a valid .safetensors'):
        read_state_dict(tmp_path / 'junk.safetensors')
    with pytest.raises(CheckpointError, match='junk.pth.*not a PyTorch checkpoint'):
        read_state_dict(tmp_path / 'junk.pth')
    with pytest.raises(CheckpointError, match='does not exist'):
        read_state_dict(tmp_path / 'missing.pth')


def _deit3():
    return timm.create_model('deit3_small_patch16_224', img_size=32, **TINY).eval()


def test_vit_to_edit_copies_the_deit3_trunk_and_seeds_the_query():
    deit3, edit = _deit3(), tiny_edit()
    with torch.no_grad():
        for p in deit3.parameters():
            p.normal_()
    sd = vit_to_edit(deit3.state_dict(), edit)
    assert set(sd) == set(edit.state_dict())
    for k, v in deit3.state_dict().items():
        if k == 'cls_token':
            assert torch.equal(sd[k], v.reshape(1, 1, -1))
        else:
            assert torch.equal(sd[k], v), k
    for k, v in edit.state_dict().items():
        if k.startswith('decoder.'):
            assert torch.equal(sd[k], v), k  # the decoder starts from EDIT's own initialisation
    edit.load_state_dict(sd)
    x = torch.randn(2, 3, 32, 32)
    _, out = edit.eval().forward_with_intermediates(x)
    # the encoder input is DeiT3's patch tokens: patch embedding plus the same position embedding
    torch.testing.assert_close(edit.patch_embed(x) + edit.pos_embed, deit3._pos_embed(deit3.patch_embed(x))[:, 1:])


def test_deit3_checkpoint_loads_through_timm_pretrained(tmp_path):
    deit3 = _deit3()
    path = save_model(deit3, tmp_path / 'deit3.safetensors')
    edit = timm.create_model('edit_tiny_patch16_224', pretrained=True, pretrained_cfg_overlay=dict(file=str(path)),
                             **{**TINY, 'img_size': 48, 'num_classes': 5})  # new resolution and a new head
    assert edit.pos_embed.shape == (1, 36, 48) and edit.head.out_features == 5
    assert torch.equal(edit.blocks[0].attn.qkv.weight, deit3.blocks[0].attn.qkv.weight)
    torch.testing.assert_close(edit.cls_token.flatten(), deit3.cls_token.flatten())


def test_deit_with_cls_position_drops_that_slot():
    deit = timm.create_model('deit_tiny_patch16_224', img_size=32, **TINY)
    sd = vit_to_edit(deit.state_dict(), tiny_edit())
    torch.testing.assert_close(sd['pos_embed'], deit.pos_embed[:, 1:])


def test_atomic_write_gives_ordinary_file_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        path = save_model(tiny_edit(), tmp_path / 'm.safetensors')
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644


def test_random_bytes_are_not_called_pickled_code_and_torch_tip_is_not_relayed(tmp_path):
    (tmp_path / 'random.pth').write_bytes(bytes(range(256)) * 20)
    with pytest.raises(CheckpointError) as info:
        read_state_dict(tmp_path / 'random.pth')
    message = str(info.value)
    assert 'random.pth' in message and 'not a PyTorch checkpoint' in message
    assert 'execute code' not in message and 'weights_only' not in message and 'likely succeed' not in message


def test_pickled_code_names_what_it_would_run(tmp_path):
    torch.save({'model': _Payload()}, tmp_path / 'evil.pth')
    with pytest.raises(CheckpointError, match=r'refusing to load .*\((posix|os|nt)\.system\)') as info:
        read_state_dict(tmp_path / 'evil.pth')
    assert 'likely succeed' not in str(info.value)


def test_a_folder_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match='is a folder'):
        read_state_dict(tmp_path)


class _Payload:
    def __reduce__(self):
        return (os.system, ('true',))
