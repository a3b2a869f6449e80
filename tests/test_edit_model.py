"""EditVisionTransformer through timm: sizes from Table 1, the timm interface, the decoder attention, bad input."""
import pytest
import timm
import torch

from editvit.models import EditVisionTransformer

from .common import tiny_edit

# Table 1 of the paper; printed with our exact counts by -s
TABLE1_PARAMS = {'edit_tiny_patch16_224': 5.82e6, 'edit_small_patch16_224': 22.30e6, 'edit_base_patch16_224': 87.76e6}
REGISTERED = ['edit_tiny_patch16_224', 'edit_small_patch16_224', 'edit_base_patch16_224',
              'edit_small_patch16_384', 'edit_base_patch16_384']


@pytest.mark.parametrize('name', list(TABLE1_PARAMS))
def test_parameter_counts_match_table1(name):
    with torch.device('meta'):
        model = timm.create_model(name)
    n = sum(p.numel() for p in model.parameters())
    print(f'{name}: {n:,} parameters (Table 1: {TABLE1_PARAMS[name] / 1e6:.2f}M, {n / TABLE1_PARAMS[name] - 1:+.2%})')
    assert abs(n / TABLE1_PARAMS[name] - 1) < 0.01


def test_every_registered_name_is_listed_and_builds():
    assert sorted(n for n in timm.list_models('edit_*') if '_cb_' not in n and '_ps_' not in n) == sorted(REGISTERED)
    for name in REGISTERED:
        with torch.device('meta'):
            model = timm.create_model(name)
        assert isinstance(model, EditVisionTransformer)
        size = model.pretrained_cfg['input_size'][-1]
        assert model.patch_embed.img_size == (size, size) and size == int(name[-3:])
        assert model.pretrained_cfg['crop_pct'] == 1.0


def test_tiny_small_base_widths_follow_deit():
    with torch.device('meta'):
        widths = {n: (m.embed_dim, m.blocks[0].attn.num_heads, len(m.blocks), m.blocks[0].ls1.gamma.shape[0])
                  for n in REGISTERED[:3] for m in [timm.create_model(n)]}
    assert widths == {'edit_tiny_patch16_224': (192, 3, 12, 192), 'edit_small_patch16_224': (384, 6, 12, 384),
                      'edit_base_patch16_224': (768, 12, 12, 768)}


def test_generic_sizes_and_real_forward_of_a_registered_name():
    model = timm.create_model('edit_tiny_patch16_224', num_classes=7).eval()
    assert model(torch.randn(1, 3, 224, 224)).shape == (1, 7)
    small = tiny_edit(img_size=28, patch_size=4).eval()
    assert small.pos_embed.shape == (1, 49, 48) and small(torch.randn(2, 3, 28, 28)).shape == (2, 10)


def test_forward_features_puts_final_cls_first():
    model = tiny_edit().eval()
    x = torch.randn(2, 3, 32, 32)
    feats = model.forward_features(x)
    assert feats.shape == (2, 1 + 16, 48)
    logits, out = model.forward_with_intermediates(x)
    torch.testing.assert_close(feats[:, 0], model.norm(out['cls'][-1]))
    torch.testing.assert_close(feats[:, 1:], model.norm(out['tokens'][-1]))
    torch.testing.assert_close(model.forward_head(feats), model.head(feats[:, 0]))
    torch.testing.assert_close(model.forward_head(feats, pre_logits=True), feats[:, 0])
    torch.testing.assert_close(logits, model(x))


def test_decoder_is_applied_after_every_block_with_shared_weights():
    """Unroll Fig. 3 by hand from the model's own parts and compare with forward_with_intermediates."""
    model = tiny_edit().eval()
    x = torch.randn(2, 3, 32, 32)
    _, out = model.forward_with_intermediates(x)
    tokens = model.patch_embed(x) + model.pos_embed
    cls = model.cls_token.reshape(1, -1).expand(2, -1)
    for i, block in enumerate(model.blocks):
        tokens = block(tokens)
        cls, attn = model.decoder(cls, tokens)
        torch.testing.assert_close(out['tokens'][i], tokens)
        torch.testing.assert_close(out['cls'][i], cls)
        torch.testing.assert_close(out['decoder_attention'][i], attn)
    assert sum(1 for n, _ in model.named_modules() if n.endswith('decoder')) == 1


def test_decoder_attention_rows_sum_to_one_and_match_recomputation():
    model = tiny_edit(decoder_heads=3).eval()
    x = torch.randn(2, 3, 32, 32)
    attn = model.decoder_attention(x)
    assert attn.shape == (2, 3, 17)
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 3))
    _, out = model.forward_with_intermediates(x)
    cls_0 = model.cls_token.reshape(1, 1, -1).expand(2, 1, -1)  # (B, 1, D)
    prev_cls = torch.cat([cls_0, torch.stack(out['cls'][:-1], 1)], 1)  # (B, L, D)
    dec = model.decoder
    for i in range(3):
        m = dec.norm(torch.cat([prev_cls[:, i:i + 1], out['tokens'][i]], 1))  # (B, 1+N, D)
        q = m[:, 0].view(2, 3, 16)  # (B, H, Dh)
        k = dec.k(m).view(2, 17, 3, 16).transpose(1, 2)  # (B, H, 1+N, Dh)
        direct = ((k @ q.unsqueeze(-1)).squeeze(-1) / 4.0).softmax(-1).mean(1)  # (B, 1+N)
        torch.testing.assert_close(attn[:, i], direct)


def test_decoder_without_cls_slot_pads_slot_zero():
    model = tiny_edit(decoder_attend_to_cls=False).eval()
    attn = model.decoder_attention(torch.randn(1, 3, 32, 32))
    assert attn.shape == (1, 3, 17)
    assert torch.all(attn[..., 0] == 0)
    torch.testing.assert_close(attn.sum(-1), torch.ones(1, 3))


@pytest.mark.parametrize('kwargs', [{}, dict(decoder_heads=2, decoder_query_proj=True, decoder_out_proj=True),
                                    dict(decoder_norm='post', decoder_attend_to_cls=False)])
def test_folded_and_literal_models_agree_in_logits_and_gradients(kwargs):
    folded = tiny_edit(**kwargs)
    literal = tiny_edit(decoder_folded=False, **kwargs)
    literal.load_state_dict(folded.state_dict())
    x = torch.randn(4, 3, 32, 32)
    grads = []
    for model in (folded, literal):
        logits = model(x)
        logits.logsumexp(-1).sum().backward()
        grads.append((logits, {n: p.grad for n, p in model.named_parameters()}))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-5, atol=1e-5)
    for n, g in grads[1][1].items():
        torch.testing.assert_close(grads[0][1][n], g, rtol=1e-4, atol=1e-6, msg=n)


def test_every_parameter_receives_a_gradient():
    """DistributedDataParallel without find_unused_parameters needs this."""
    model = tiny_edit()
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


def test_gradient_checkpointing_gives_the_same_gradients():
    model = tiny_edit()
    x = torch.randn(2, 3, 32, 32)
    model(x).square().sum().backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model(x).square().sum().backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, expected[n], msg=n)


def test_forward_intermediates_follows_timm():
    model = tiny_edit().eval()
    x = torch.randn(2, 3, 32, 32)
    final, inter = model.forward_intermediates(x, indices=2)
    assert len(inter) == 2 and inter[0].shape == (2, 48, 4, 4)
    torch.testing.assert_close(final, model.forward_features(x))
    _, out = model.forward_with_intermediates(x)
    torch.testing.assert_close(inter[1], out['tokens'][2].reshape(2, 4, 4, 48).permute(0, 3, 1, 2))
    pairs = model.forward_intermediates(x, indices=[0], return_prefix_tokens=True, output_fmt='NLC',
                                        intermediates_only=True)
    torch.testing.assert_close(pairs[0][0], out['tokens'][0])
    torch.testing.assert_close(pairs[0][1], out['cls'][0].unsqueeze(1))
    assert model.prune_intermediate_layers(indices=[1]) == [1] and len(model.blocks) == 2
    assert isinstance(model.head, torch.nn.Identity)


def test_features_only_through_timm():
    model = timm.create_model('edit_tiny_patch16_224', img_size=32, patch_size=8, depth=3, features_only=True,
                              out_indices=(1, 2))
    feats = model(torch.randn(1, 3, 32, 32))
    assert [f.shape for f in feats] == [(1, 192, 4, 4)] * 2


def test_timm_helpers():
    model = tiny_edit()
    assert model.no_weight_decay() == {'pos_embed', 'cls_token'}
    model.reset_classifier(3)
    assert model.get_classifier().out_features == 3 and model(torch.randn(1, 3, 32, 32)).shape == (1, 3)
    model.reset_classifier(0, global_pool='avg')
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 48)
    from timm.models import group_parameters
    groups = group_parameters(model, model.group_matcher())
    assert sum(len(v) for v in groups.values()) == len(list(model.parameters()))


def test_wrong_image_size_and_channels_are_named():
    model = tiny_edit()
    with pytest.raises(ValueError, match=r'3x32x32.*got 3x64x64'):
        model(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match=r'3x32x32.*got 1x32x32'):
        model(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match='img_size='):
        model(torch.randn(1, 3, 16, 16))


def test_bf16_autocast_on_cpu():
    model = tiny_edit().eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        logits = model(x)
    assert logits.dtype == torch.bfloat16
    torch.testing.assert_close(logits.float(), model(x), rtol=0.1, atol=0.1)


def test_torch_compile_has_no_graph_break():
    model = tiny_edit().eval()
    x = torch.randn(2, 3, 32, 32)
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    compiled = torch.compile(model, backend='eager', fullgraph=True)
    torch.testing.assert_close(compiled(x), model(x))
    # training: the folded decoder's hand-written backward is traced too
    model.train()
    compiled = torch.compile(model, backend='aot_eager', fullgraph=True)
    compiled(x).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model(x).sum().backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(grads[n], p.grad, msg=n)


def test_macs_match_table1_for_the_literal_decoder_and_deit_for_the_folded_one():
    """Table 1's FLOPs are MACs of the literal decoder (keys and values for 1+N tokens at every depth)."""
    from editvit.macs import count_macs
    literal = count_macs(timm.create_model('edit_tiny_patch16_224', decoder_folded=False))
    folded = count_macs(timm.create_model('edit_tiny_patch16_224'))
    deit = count_macs(timm.create_model('deit_tiny_patch16_224'))
    print(f'EDIT-T MACs: literal {literal / 1e9:.3f}G (Table 1: 1.42G), folded {folded / 1e9:.3f}G, '
          f'DeiT-T {deit / 1e9:.3f}G')
    assert abs(literal / 1.42e9 - 1) < 0.01
    # the folded decoder costs 2 D^2 per depth (W_k^T q, W_v pooled) plus 2 N D (scores, weighted sum)
    D, N, L = 192, 196, 12
    assert literal - folded > L * (2 * (N + 1) * D * D - 2 * D * D - 2 * (N + 1) * D) * 0.99
    assert folded < deit  # EDIT's encoder attends over 196 tokens, DeiT's over 197


def test_encoder_tokens_are_contiguous():
    # PatchEmbed returns a transposed view; kept, its layout would pass through every residual add and make each
    # LayerNorm and linear of the encoder and decoder read a strided tensor (2-4% of EDIT-S inference on CPU)
    model = tiny_edit().eval()
    seen = []
    for block in model.blocks:
        block.register_forward_hook(lambda m, args, out: seen.append((args[0].is_contiguous(), out.is_contiguous())))
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
    assert seen == [(True, True)] * len(model.blocks)
