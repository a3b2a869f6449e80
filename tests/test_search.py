"""PSViT search: the compact space, hand-counted MACs of members, evolution under a budget, the supernet, the CLI."""
import itertools
import json
import random

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from editvit.cli import main
from editvit.search import PSViTSearchSpace, evaluate_member, evolutionary_search, train_supernet

SPACE = PSViTSearchSpace(token_choices=((16, 9), (4, 1)), depths=(2, 3), img_size=16, patch_size=4, embed_dim=16,
                         num_heads=2, num_classes=3)


def all_members(space):
    shared = [c for r in range(len(space.pairs) + 1) for c in itertools.combinations(space.pairs, r)]
    return [space.arch(t, s) for t in itertools.product(*space.token_choices) for s in shared]


def test_the_compact_space_counts_its_members_and_only_holds_valid_psvits():
    assert SPACE.pairs == (1, 3)  # stage 0: pair (0, 1); stage 1: pair (2, 3), layer 4 alone
    members = all_members(SPACE)
    assert SPACE.size == len(set(members)) == 2 * 2 * 2 ** 2
    rng = random.Random(0)
    for arch in [SPACE.sample(rng) for _ in range(20)] + members[:3]:
        assert arch in members
        assert SPACE.mutate(arch, rng, 0.5) in members and SPACE.crossover(arch, members[-1], rng) in members
        SPACE.build_subnet(arch)  # every member builds
    with pytest.raises(ValueError, match='not the second of a pair'):
        SPACE.arch((16, 4), (2,))
    with pytest.raises(ValueError, match='at most 9'):
        PSViTSearchSpace(token_choices=((16, 9), (16, 4)), depths=(2, 2), img_size=16, patch_size=4)


def test_member_macs_equal_the_flop_counter_of_the_built_subnet():
    for arch in (SPACE.largest(), SPACE.cheapest(), SPACE.arch((9, 4), (3,))):
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            SPACE.build_subnet(arch)(torch.randn(1, 3, 16, 16))
        assert counter.get_total_flops() // 2 == SPACE.macs(arch)
    assert SPACE.macs(SPACE.cheapest()) < SPACE.macs(SPACE.arch((9, 1))) < SPACE.macs(SPACE.largest())


def test_search_finds_the_best_member_within_the_budget():
    # a score we can optimise by brute force: more tokens is better, sharing slightly worse
    def score(arch):
        return sum(arch.num_tokens) - 0.5 * sum(arch.share_attention)
    budget = (SPACE.macs(SPACE.largest()) + SPACE.macs(SPACE.cheapest())) // 2
    fitting = [a for a in all_members(SPACE) if SPACE.macs(a) <= budget]
    best = max(fitting, key=score)
    exhaustive = evolutionary_search(SPACE, score, budget, population=SPACE.size, generations=0)
    assert exhaustive.best == best and len(exhaustive.history) == len(fitting)
    evolved = evolutionary_search(SPACE, score, budget, population=4, generations=5, parents=2, seed=1)
    assert all(macs <= budget for _, _, macs in evolved.history)
    assert len({a for a, _, _ in evolved.history}) == len(evolved.history)  # each member scored once
    assert evolved.score == max(s for _, s, _ in evolved.history) and evolved.score >= score(SPACE.cheapest())
    with pytest.raises(ValueError, match='the cheapest needs'):
        evolutionary_search(SPACE, score, SPACE.macs(SPACE.cheapest()) - 1)


def test_supernet_trains_through_sampled_members_and_scores_them():
    supernet = SPACE.build_supernet()
    images, labels = torch.randn(8, 3, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    loader = [(images, labels, 0)] * 3
    before = [p.detach().clone() for p in supernet.parameters()]
    loss = train_supernet(supernet, SPACE, loader, epochs=1, lr=1e-2, progress=False)
    assert loss > 0 and any(not torch.equal(a, b) for a, b in zip(before, supernet.parameters()))
    top1 = evaluate_member(supernet, SPACE.cheapest(), loader)
    logits = supernet.forward_subnet(images, SPACE.cheapest().num_tokens, SPACE.cheapest().share_attention)
    assert top1 == pytest.approx(100 * (logits.argmax(1) == labels).float().mean().item())


def test_search_command_on_synthetic_data(tmp_path, capsys):
    out = tmp_path / 'search.json'
    code = main(['search', '--dataset', 'synthetic', '--token-choices', '16,9/4,1', '--depths', '2,2', '--img-size',
                 '16', '--embed-dim', '16', '--num-classes', '3', '--epochs', '1', '--max-steps', '2', '--batch-size',
                 '32', '--population', '3', '--generations', '1', '--parents', '2', '--val-batches', '1',
                 '--num-workers', '0', '--budget-mmacs', '0.2', '--threads', '1', '--output', str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert result['best']['macs'] <= 200_000 and result['space_size'] == 16
    assert result['threads'] == 1 and result['load'] >= 0
    assert 'best: tokens' in capsys.readouterr().out
    assert main(['search', '--dataset', 'synthetic', '--budget-mmacs', '0.001', '--output', str(out)]) == 2
    assert 'the cheapest needs' in capsys.readouterr().err
