"""Evolutionary search under a MACs budget (as in single-path one-shot NAS), random search as its special case.

    population = P random members within the budget
    for each generation:
        keep the top K by score as parents
        children = crossovers of two parents + mutations of one parent, only those within the budget and unseen
        population = parents + children
    return the best member seen

`generations=0` is random search over `population` members. Scores come from a callable (the supernet's validation
accuracy in `run_search`), each member scored once.
"""
import random
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from .space import Arch, PSViTSearchSpace


@dataclass
class SearchResult:
    """The best member, its score and MACs, and every member scored (in order) as (arch, score, macs)."""
    best: Arch
    score: float
    macs: int
    history: List[Tuple[Arch, float, int]] = field(default_factory=list)


def _within_budget(space: PSViTSearchSpace, budget: Optional[int]) -> Callable[[Arch], bool]:
    return lambda arch: budget is None or space.macs(arch) <= budget


def evolutionary_search(
        space: PSViTSearchSpace,
        score: Callable[[Arch], float],
        budget_macs: Optional[int] = None,
        population: int = 16,
        generations: int = 4,
        parents: int = 4,
        mutation_prob: float = 0.25,
        seed: int = 0,
        max_tries: int = 1000,
) -> SearchResult:
    """Search the space for the member of highest score whose MACs fit the budget.

    Args:
        space: The search space.
        score: Higher is better (e.g. supernet validation top-1).
        budget_macs: Largest MACs per image allowed (None: no budget).
        population: Members per generation.
        generations: Rounds of selection, crossover and mutation (0: random search).
        parents: Members kept each generation.
        mutation_prob: Probability of redrawing each choice in a mutation.
        seed: Seed of the search's own random generator.
        max_tries: Draws allowed to fill a generation before giving up (a tight budget leaves few members).
    """
    rng = random.Random(seed)
    fits = _within_budget(space, budget_macs)
    if budget_macs is not None and space.macs(space.cheapest()) > budget_macs:
        raise ValueError(f'no member fits {budget_macs:,} MACs; the cheapest needs {space.macs(space.cheapest()):,}')
    scores: Dict[Arch, float] = {}
    history: List[Tuple[Arch, float, int]] = []

    def evaluate(arch: Arch) -> None:
        if arch not in scores:
            scores[arch] = score(arch)
            history.append((arch, scores[arch], space.macs(arch)))

    def fill(make: Callable[[], Arch], pool: List[Arch], n: int) -> None:
        for _ in range(max_tries):
            if len(pool) >= n:
                return
            arch = make()
            if fits(arch) and arch not in pool and arch not in scores:
                pool.append(arch)

    current: List[Arch] = []
    fill(lambda: space.sample(rng), current, min(population, space.size))
    for arch in current:
        evaluate(arch)
    for _ in range(generations):
        top = sorted(scores, key=scores.get, reverse=True)[:parents]
        children: List[Arch] = []
        half = (population - len(top)) // 2
        fill(lambda: space.mutate(rng.choice(top), rng, mutation_prob), children, half)
        fill(lambda: space.crossover(rng.choice(top), rng.choice(top), rng), children, population - len(top))
        for arch in children:
            evaluate(arch)
    best = max(scores, key=scores.get)
    return SearchResult(best, scores[best], space.macs(best), history)

