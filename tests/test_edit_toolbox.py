"""EDIT with the rest of the PyTorch toolbox, where DeiT3 works: FX tracing, TorchScript, the meta device."""
import timm
import torch
from torch.fx import symbolic_trace

import editvit  # noqa: F401  registers the EDIT models
from editvit.analysis.extract import _from_hooks, extract_attention
from editvit.macs import count_macs

SMALL = dict(img_size=32, patch_size=8, embed_dim=48, depth=3, num_heads=3, num_classes=10)


def edit(**kwargs) -> torch.nn.Module:
    return timm.create_model('edit_tiny_patch16_224', **{**SMALL, **kwargs}).eval()


def ps_edit(**kwargs) -> torch.nn.Module:
    return timm.create_model('edit_tiny_ps_patch16_224', **{**SMALL, **kwargs}).eval()


def test_fx_trace_gives_the_eager_output():
    for model in (edit(), edit(decoder_heads=3, decoder_attend_to_cls=False), edit(decoder_folded=False)):
        x = torch.randn(2, 3, 32, 32)
        traced = symbolic_trace(model)
        torch.testing.assert_close(traced(x), model(x), rtol=0, atol=0)


def test_timm_feature_extractor_reads_encoder_blocks():
    from timm.models import create_feature_extractor
    model = edit()
    x = torch.randn(2, 3, 32, 32)
    features = create_feature_extractor(model, return_nodes={'blocks.1': 'mid', 'norm': 'out'})(x)
    torch.testing.assert_close(features['mid'], model.forward_intermediates(
        x, indices=[1], output_fmt='NLC', intermediates_only=True)[0])
    torch.testing.assert_close(features['out'], model.forward_features(x))


def test_torchscript_gives_the_eager_logits():
    # the folded decoder's custom autograd Function is Python-only: a scripted decoder takes the plain autograd path
    model = edit(decoder_heads=3)
    x = torch.randn(2, 3, 32, 32)
    scripted = torch.jit.script(model)
    torch.testing.assert_close(scripted(x), model(x))
    model.train()
    scripted = torch.jit.script(model)
    scripted(x).sum().backward()
    assert model.decoder.k.weight.grad is not None and model.cls_token.grad is not None


def test_meta_device_forward_gives_the_shapes():
    with torch.device('meta'):
        model = timm.create_model('edit_small_patch16_224')
        pooled = ps_edit(num_tokens=(16, 4, 4), share_attention=(False, False, True))
    assert model(torch.empty(2, 3, 224, 224, device='meta')).shape == (2, 1000)
    assert model.forward_features(torch.empty(1, 3, 224, 224, device='meta')).shape == (1, 197, 384)
    assert pooled(torch.empty(2, 3, 32, 32, device='meta')).shape == (2, 10)


def test_macs_on_meta_equal_those_on_cpu():
    pooled = ps_edit(num_tokens=(16, 4, 4), share_attention=(False, False, True))
    for model in (edit(), edit(decoder_folded=False), pooled, timm.create_model('deit3_small_patch16_224', **SMALL)):
        weights = {k: v.clone() for k, v in model.state_dict().items()}
        assert count_macs(model, (3, 32, 32)) == count_macs(model, (3, 32, 32), meta=False) > 0
        assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())  # weights untouched
        assert next(model.parameters()).device.type == 'cpu'


def test_analysis_of_edit_from_its_intermediates_equals_hooks_on_its_blocks():
    """EDIT's encoder blocks are timm `Block`s, so the hooks used for timm ViTs can read them too: the contract
    gives exactly what they record."""
    model = edit()
    x = torch.randn(2, 3, 32, 32)
    maps = extract_attention(model, x)
    with torch.inference_mode():
        hooked = _from_hooks(model, x)
    assert maps.num_prefix_tokens == hooked.num_prefix_tokens == 0 and not maps.has_cls and not hooked.has_cls
    for a, b in zip(maps.attention + maps.tokens, hooked.attention + hooked.tokens):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert maps.pooling == hooked.pooling and maps.shared == hooked.shared and maps.token_grids == hooked.token_grids
