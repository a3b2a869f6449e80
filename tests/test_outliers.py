"""High-norm tokens, sink rates and massive activations: planted cases are found exactly, clean inputs give nothing."""
import pytest
import torch

from editvit.analysis import AttentionMaps, AttentionStatistics
from editvit.analysis import sink_measures as M
from editvit.analysis.massive_activations import massive_activation_count, top_activations


def clean_tokens(B: int = 2, N: int = 64, D: int = 16) -> torch.Tensor:
    """Tokens of random directions and norms in [1, 2): the largest within 2x of the median, as in DINOv2-S."""
    torch.manual_seed(0)
    direction = torch.nn.functional.normalize(torch.randn(B, N, D), dim=-1)
    return direction * (1 + torch.rand(B, N, 1))  # (B, N, D)


def test_a_token_with_ten_times_the_norm_is_the_only_one_flagged():
    tokens = clean_tokens()
    tokens[0, 5] *= 10 / tokens[0, 5].norm() * tokens[0].norm(dim=-1).median()  # 10x its image's median norm
    flagged = M.high_norm_tokens(tokens)
    assert flagged[0].nonzero().flatten().tolist() == [5] and not flagged[1].any()
    torch.testing.assert_close(M.high_norm_fraction(tokens), torch.tensor([1 / 64, 0.0]))
    assert float(M.max_norm_ratio(tokens)[0]) == pytest.approx(10.0, rel=0.02)  # the median moves by a rank
    assert float(M.max_norm_ratio(tokens)[1]) < 2


def test_clean_tokens_are_not_flagged_however_tight_their_norms():
    tokens = clean_tokens()
    tight = torch.nn.functional.normalize(tokens, dim=-1) * (1 + 0.01 * torch.rand(2, 64, 1))  # norms 1 to 1.01
    for t in (tokens, tight):
        assert float(M.high_norm_fraction(t).sum()) == 0.0


def test_darcet_absolute_norm_test_is_an_option():
    tokens = clean_tokens() * 100  # norms 100 to 200
    assert M.high_norm_tokens(tokens, norm_threshold=150).float().mean() == pytest.approx(0.5, abs=0.15)
    assert not M.high_norm_tokens(tokens, norm_threshold=250).any()
    assert not M.high_norm_tokens(tokens).any()  # the ratio test: none is 4x the median


def test_sink_rates_on_cls_and_on_any_token_at_two_token_counts():
    # a fixed share of 0.5 on [CLS] passes Gu et al.'s test at any N; it is ten times the uniform share at 257
    # tokens (0.5 > 10 / 257) but not at 17 (0.5 < 10 / 17), while 11 / N is at both
    for N, cls_is_token_sink in ((17, False), (257, True)):
        received = torch.full((4, N), 1 / N)  # 4 heads, uniform
        received[1] = 0.5 / (N - 1)
        received[1, 0] = 0.5  # head 1: half on [CLS]
        received[2] = (1 - 11 / N) / (N - 1)
        received[2, 3] = 11 / N  # head 2: 11 times the uniform share on patch 3
        assert M.cls_sink_heads(received).tolist() == [False, True, False, False]
        assert M.token_sink_heads(received).tolist() == [False, cls_is_token_sink, True, False]


def test_planted_massive_activation_is_found_at_its_token_and_dimension():
    hidden = torch.randn(2, 17, 32)  # (B, N, D)
    hidden[:, 9, 21] = -5000.0  # one channel of one token, both images
    values, ratios, tokens, dims = top_activations(hidden, k=1)
    assert tokens.flatten().tolist() == [9, 9] and dims.flatten().tolist() == [21, 21]
    assert values.flatten().tolist() == [5000.0, 5000.0] and bool((ratios > 1000).all())
    assert massive_activation_count(hidden).tolist() == [1, 1]
    assert massive_activation_count(torch.randn(2, 17, 32)).tolist() == [0, 0]


def _maps(tokens: torch.Tensor) -> AttentionMaps:
    B, N, _ = tokens.shape
    attention = torch.full((B, 1, 2, N, N), 1 / N)  # one layer, two uniform heads
    return AttentionMaps(attention=attention, tokens=tokens[:, None], num_prefix_tokens=1, has_cls=True,
                         grid_size=(4, 4))


def test_statistics_name_the_planted_outliers_and_report_none_on_clean_tokens():
    hidden = torch.randn(2, 17, 32)
    clean = AttentionStatistics()
    clean.update(_maps(hidden))
    out = clean.summary()
    layer = out['layers'][0]
    assert layer['high_norm_fraction'] == 0.0 and layer['massive_activations'] == 0.0
    assert out['summary']['layers_with_high_norm_tokens'] == out['summary']['layers_with_massive_activations'] == 0
    assert layer['cls_sink_rate'] == layer['token_sink_rate'] == 0.0

    planted = hidden.clone()
    planted[:, 7, 3] = 5000.0  # patch 6 = row 1, column 2; a massive activation and a high-norm token
    stats = AttentionStatistics()
    stats.update(_maps(planted))
    layer = stats.summary()['layers'][0]
    assert layer['massive_activations'] == 1.0
    assert layer['massive_top'][0] == dict(token='patch(1,2)', dim=3, magnitude=5000.0,
                                           ratio=pytest.approx(layer['top_activation_ratio']), images=1.0)
    assert layer['high_norm_fraction'] == pytest.approx(1 / 16) and layer['max_norm_ratio'] > 100
