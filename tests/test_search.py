"""PSViT search: the compact space, hand-counted MACs of members, evolution under a budget, the supernet, the CLI."""
import itertools
import json
import random
import sys

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from editvit.cli import main
from editvit.search import Arch, PSViTSearchSpace, SampledSubnets, evaluate_member, evolutionary_search
from editvit.search import sample_within_budget

from .common import kill_after_checkpoint

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


def test_the_supernet_trains_through_members_drawn_from_seed_and_step_and_scores_them():
    model = SampledSubnets(SPACE.build_supernet(), SPACE, budget_macs=None, seed=3)
    drawn = []
    model.supernet.forward_subnet = lambda images, tokens, shared: drawn.append(Arch(tokens, shared)) or images
    for _ in range(6):
        model(torch.randn(2, 3, 16, 16))
    assert int(model.state_dict()['steps']) == 6  # saved with the weights in every checkpoint
    expected = [sample_within_budget(SPACE, random.Random(3 * 1_000_003 + step), None) for step in range(6)]
    assert drawn == expected and len(set(drawn)) > 1
    supernet = SPACE.build_supernet()
    images, labels = torch.randn(8, 3, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    top1 = evaluate_member(supernet, SPACE.cheapest(), [(images, labels, 0)] * 3)
    logits = supernet.forward_subnet(images, SPACE.cheapest().num_tokens, SPACE.cheapest().share_attention)
    assert top1 == pytest.approx(100 * (logits.argmax(1) == labels).float().mean().item())


ARGS = ['--dataset', 'synthetic', '--token-choices', '16,9/4,1', '--depths', '2,2', '--img-size', '16', '--embed-dim',
        '16', '--num-classes', '3', '--batch-size', '32', '--population', '3', '--generations', '1', '--parents', '2',
        '--val-batches', '1', '--num-workers', '0', '--budget-mmacs', '0.2', '--threads', '1', '--no-progress']


def test_search_command_writes_a_run_folder_and_refuses_to_replace_it(tmp_path, capsys):
    out = tmp_path / 'run'
    assert main(['search', *ARGS, '--epochs', '2', '--max-steps', '10', '--output', str(out)]) == 0
    result = json.loads((out / 'search.json').read_text())
    assert result['best']['macs'] <= 200_000 and result['space_size'] == 16
    assert result['threads'] == 1 and result['load'] >= 0
    assert result['search'] == {'population': 3, 'generations': 1, 'parents': 2, 'val_batches': 1,
                                'supernet_updates': 10}
    assert 'best: tokens' in capsys.readouterr().out
    for name in ('config.yaml', 'checkpoint-last.pth', 'summary.csv', 'model.safetensors', 'metrics.json'):
        assert (out / name).is_file(), name
    # 256 images in batches of 32: 8 updates an epoch; max_steps 10 stops 2 updates into the second epoch
    assert json.loads((out / 'metrics.json').read_text())['updates'] == 10
    assert len((out / 'summary.csv').read_text().splitlines()) == 3
    assert main(['search', *ARGS, '--epochs', '2', '--max-steps', '10', '--output', str(out)]) == 2
    assert 'already holds a run' in capsys.readouterr().err
    assert main(['search', '--dataset', 'synthetic', '--budget-mmacs', '0.001', '--output', str(tmp_path / 'b')]) == 2
    assert 'the cheapest needs' in capsys.readouterr().err
    old = tmp_path / 'search.json'
    old.write_text('{}')
    assert main(['search', *ARGS, '--output', str(old)]) == 2
    assert '--output is now a run folder' in capsys.readouterr().err


def test_a_finished_search_is_kept_or_searched_again_with_other_evolution_options(tmp_path, capsys):
    out = tmp_path / 'run'
    assert main(['search', *ARGS, '--epochs', '1', '--output', str(out)]) == 0
    first = json.loads((out / 'search.json').read_text())
    weights = (out / 'model.safetensors').read_bytes()
    assert main(['search', *ARGS, '--epochs', '1', '--output', str(out), '--resume']) == 0
    assert 'is finished' in capsys.readouterr().out
    assert json.loads((out / 'search.json').read_text())['history'] == first['history']
    assert main(['search', *ARGS, '--epochs', '1', '--output', str(out), '--resume', '--population', '5']) == 0
    again = json.loads((out / 'search.json').read_text())
    assert again['search']['population'] == 5 and len(again['history']) > len(first['history'])
    assert again['history'][0] == first['history'][0]  # the same supernet and seed: the same first member's score
    assert (out / 'model.safetensors').read_bytes() == weights  # the supernet was not trained again
    assert main(['search', *ARGS, '--epochs', '2', '--output', str(out), '--resume', '--population', '5']) == 0
    extended = json.loads((out / 'search.json').read_text())  # trained one more epoch, then searched again
    assert extended['search']['supernet_updates'] == 16 and (out / 'model.safetensors').read_bytes() != weights
    assert main(['search', *ARGS, '--epochs', '2', '--output', str(out), '--resume', '--lr', '0.01']) == 2
    assert 'different set-up' in capsys.readouterr().err


def test_resume_reads_the_run_options_and_refuses_those_that_change_the_supernet(tmp_path, capsys):
    out = tmp_path / 'run'
    assert main(['search', *ARGS, '--epochs', '1', '--output', str(out)]) == 0
    first = json.loads((out / 'search.json').read_text())
    capsys.readouterr()
    assert main(['search', '--resume', '--output', str(out)]) == 0  # no option repeated: the saved ones
    assert 'is finished' in capsys.readouterr().out
    assert json.loads((out / 'search.json').read_text()) == first
    assert main(['search', '--resume', '--output', str(out), '--population', '5', '--embed-dim', '16']) == 0
    again = json.loads((out / 'search.json').read_text())  # the saved space, budget and data; a larger population
    assert again['search']['population'] == 5 and again['space'] == first['space']
    assert again['history'][0] == first['history'][0] and again['budget_macs'] == 200_000
    assert main(['search', '--resume', '--output', str(out)]) == 0  # the options of the last search are kept
    assert 'is finished' in capsys.readouterr().out
    for options, words in ((['--num-heads', '4'], "space: {"), (['--lr', '0.01'], 'lr: 0.001 -> 0.01'),
                           (['--budget-mmacs', '0.3'], 'budget_macs: 200000 -> 300000')):
        assert main(['search', '--resume', '--output', str(out), *options]) == 2
        err = capsys.readouterr().err
        assert 'cannot resume the run' in err and 'different set-up' in err and words in err, err
    assert main(['search', '--resume', '--output', str(tmp_path / 'none')]) == 2
    assert 'nothing to resume' in capsys.readouterr().err


@pytest.mark.slow  # kills and restarts a search process
def test_a_search_killed_and_resumed_trains_the_same_supernet_and_finds_the_same_member(tmp_path):
    from safetensors.torch import load_file
    run_args = [*ARGS, '--batch-size', '8', '--epochs', '4', '--max-steps', '100', '--checkpoint-every', '2',
                '--embed-dim', '32', '--budget-mmacs', '0.5']  # 32 updates an epoch; 100 steps end the fourth early
    reference = tmp_path / 'reference'
    assert main(['search', *run_args, '--output', str(reference)]) == 0

    run = tmp_path / 'interrupted'
    cmd = [sys.executable, '-m', 'editvit', 'search', *run_args, '--output', str(run)]
    first = kill_after_checkpoint(cmd, run / 'checkpoint-last.pth', min_updates=4)
    state = torch.load(run / 'checkpoint-last.pth', weights_only=True)
    assert state['epoch'] == 0 and state['batches_done'] > 0 and not (run / 'search.json').exists()
    second = kill_after_checkpoint([*cmd, '--resume'], run / 'checkpoint-last.pth', min_updates=first + 40)
    assert second > first
    assert main(['search', *run_args, '--output', str(run), '--resume']) == 0

    expected, got = load_file(reference / 'model.safetensors'), load_file(run / 'model.safetensors')
    assert expected.keys() == got.keys() and int(got['steps']) == 100
    for key in expected:
        assert torch.equal(expected[key], got[key]), f'{key} differs after kill and resume'
    ref_result, result = (json.loads((d / 'search.json').read_text()) for d in (reference, run))
    assert result['best'] == ref_result['best'] and result['history'] == ref_result['history']
    assert result['supernet_final_loss'] == ref_result['supernet_final_loss']
    assert len((run / 'summary.csv').read_text().splitlines()) == 5  # a row per epoch, none repeated
