"""Context Broadcasting: the formula, no parameters, plain weights load, every registered CB model trains a step."""
import pytest
import timm
import torch
import torch.nn.functional as F

from editvit.models.layers.cb_block import ContextBroadcast, ContextBroadcastBlock
from timm.models.vision_transformer import Block

from .common import tiny_edit

CB_MODELS = ['deit3_small_cb_patch16_224', 'deit3_base_cb_patch16_224', 'edit_tiny_cb_patch16_224',
             'edit_small_cb_patch16_224', 'edit_base_cb_patch16_224']
TINY = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=10)


def test_cb_is_the_uniform_attention_formula():
    x = torch.randn(2, 5, 4)
    expected = torch.empty_like(x)
    for b in range(2):
        for i in range(5):
            expected[b, i] = 0.5 * x[b, i] + 0.5 * sum(x[b, j] for j in range(5)) / 5
    torch.testing.assert_close(ContextBroadcast()(x), expected)
    # the same as attending with a uniform map: softmax of equal scores is 1/N everywhere
    uniform = torch.full((2, 5, 5), 1 / 5)
    torch.testing.assert_close(ContextBroadcast()(x), 0.5 * x + 0.5 * uniform @ x)


def test_cb_adds_no_parameters_and_cb_s_starts_as_cb():
    assert list(ContextBroadcast().parameters()) == []
    cb_s = ContextBroadcast(4, dim_scale=True)
    assert [p.shape for p in cb_s.parameters()] == [torch.Size([4])]
    x = torch.randn(2, 5, 4)
    torch.testing.assert_close(cb_s(x), ContextBroadcast()(x))
    with torch.no_grad():
        cb_s.scale.copy_(torch.tensor([0., 1., 0.25, 0.5]))
    out = cb_s(x)
    torch.testing.assert_close(out[..., 0], x[..., 0])  # lambda = 0: the token unchanged
    torch.testing.assert_close(out[..., 1], x[..., 1].mean(1, keepdim=True).expand(2, 5))  # lambda = 1: the mean
    torch.testing.assert_close(out[..., 2], 0.75 * x[..., 2] + 0.25 * x[..., 2].mean(1, keepdim=True))
    with pytest.raises(ValueError, match='pass dim=D'):
        ContextBroadcast(dim_scale=True)


def test_cb_block_is_block_with_cb_at_the_end_of_the_mlp_branch():
    kw = dict(dim=16, num_heads=2, qkv_bias=True, init_values=0.1)
    plain, cb = Block(**kw).eval(), ContextBroadcastBlock(**kw).eval()
    assert list(plain.state_dict()) == list(cb.state_dict())
    cb.load_state_dict(plain.state_dict())
    x = torch.randn(2, 7, 16)
    h = x + plain.ls1(plain.attn(plain.norm1(x)))
    m = plain.mlp(plain.norm2(h))
    expected = h + plain.ls2(0.5 * m + 0.5 * m.mean(1, keepdim=True))
    torch.testing.assert_close(cb(x), expected)
    assert not torch.allclose(cb(x), plain(x))


@pytest.mark.parametrize('name', CB_MODELS)
def test_cb_models_have_the_plain_models_parameters(name):
    with torch.device('meta'):
        cb, plain = timm.create_model(name), timm.create_model(name.replace('_cb', ''))
    assert {k: v.shape for k, v in cb.state_dict().items()} == {k: v.shape for k, v in plain.state_dict().items()}
    assert all(isinstance(b, ContextBroadcastBlock) for b in cb.blocks)
    assert type(cb) is type(plain)


@pytest.mark.parametrize('name', ['deit3_small_cb_patch16_224', 'edit_tiny_cb_patch16_224'])
def test_plain_weights_load_into_cb_models(name):
    args = dict(TINY, init_values=0.5)  # DeiT3's LayerScale 1e-6 would hide any branch at initialisation
    plain = timm.create_model(name.replace('_cb', ''), **args).eval()
    cb = timm.create_model(name, **args).eval()
    cb.load_state_dict(plain.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    assert not torch.allclose(cb(x), plain(x))  # same weights, a different function
    # with the CB of every block undone by hand, the CB model computes the plain model
    for block in cb.blocks:
        block.mlp.cb.forward = lambda t: t
    torch.testing.assert_close(cb(x), plain(x))


def test_cb_dim_scale_flag_reaches_every_block():
    model = tiny_edit(block_fn=ContextBroadcastBlock)
    assert all(b.mlp.cb.scale is None for b in model.blocks)
    model = timm.create_model('edit_tiny_cb_patch16_224', cb_dim_scale=True, **TINY)
    extra = sum(p.numel() for n, p in model.named_parameters() if n.endswith('cb.scale'))
    assert extra == TINY['depth'] * TINY['embed_dim']


@pytest.mark.parametrize('name', CB_MODELS)
def test_every_cb_model_takes_a_training_step(name):
    model = timm.create_model(name, **TINY)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    before = model.blocks[0].mlp.fc2.weight.detach().clone()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and not torch.equal(before, model.blocks[0].mlp.fc2.weight)
