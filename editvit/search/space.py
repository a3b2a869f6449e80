"""PSViT's compact search space: token numbers per stage and attention sharing per pair of adjacent layers.

PSViT treats the number of tokens in each layer and the layers that share attention as hyper-parameters learned from
data, searched in a compact set of combinations (arXiv 2108.03428). Our compact set (the paper's exact one could not
be retrieved, so this is our choice):

    tokens:  for every stage, one of a few candidate counts (e.g. {64, 49} then {25, 16} then {9, 4} patch tokens);
             candidates never grow from one stage to the next, so every combination is a valid PSViT
    sharing: within a stage the layers form adjacent pairs (0, 1), (2, 3), ...; in each pair the second layer either
             reuses the first one's map or computes its own. A pair never straddles pooling, so every choice is valid

which has prod_s |tokens_s| * 2^(sum_s floor(depth_s / 2)) members, a few hundred to a few thousand for small nets.
"""
import random
from dataclasses import dataclass, field
from typing import Any, Dict, Sequence, Tuple

from ..models.layers.token_pooling import PoolingMode, grid_side
from ..models.psvit import PSViT, psvit_macs


@dataclass(frozen=True)
class Arch:
    """One member of the space: patch tokens per stage and, per layer, whether it reuses the previous map."""
    num_tokens: Tuple[int, ...]
    share_attention: Tuple[bool, ...]

    def to_dict(self) -> Dict[str, Any]:
        return dict(num_tokens=list(self.num_tokens), share_attention=list(self.share_attention))


@dataclass(frozen=True)
class PSViTSearchSpace:
    """The compact set of token numbers and sharing choices over a PSViT of fixed depths and width.

    Args:
        token_choices: Candidate patch-token counts for each stage.
        depths: Layers per stage.
        pooling: '1d' or '2d' token pooling (2d: every candidate a square).
        img_size: Input image size.
        patch_size: Patch size.
        embed_dim: Token width.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width over the token width.
        num_classes: Classes of the head.
    """
    token_choices: Tuple[Tuple[int, ...], ...] = ((64, 49), (25, 16), (9, 4))
    depths: Tuple[int, ...] = (2, 2, 2)
    pooling: PoolingMode = '2d'
    img_size: int = 32
    patch_size: int = 4
    embed_dim: int = 64
    num_heads: int = 2
    mlp_ratio: float = 4.
    num_classes: int = 10
    pairs: Tuple[int, ...] = field(init=False, repr=False)  # layers that may share: the second of each pair

    def __post_init__(self) -> None:
        for key in ('img_size', 'patch_size', 'embed_dim', 'num_heads', 'num_classes'):
            if getattr(self, key) < 1:
                raise ValueError(f'{key} must be at least 1, got {getattr(self, key)}')
        if self.embed_dim % self.num_heads:
            raise ValueError(f'num_heads {self.num_heads} does not divide embed_dim {self.embed_dim}: the heads split '
                             f'the width evenly; choose a divisor of {self.embed_dim}')
        if self.patch_size > self.img_size:
            raise ValueError(f'patch_size {self.patch_size} is larger than img_size {self.img_size}')
        if any(n < 1 for choices in self.token_choices for n in choices):
            raise ValueError(f'token choices must be at least 1, got {self.token_choices}')
        if len(self.token_choices) != len(self.depths):
            raise ValueError(f'token_choices gives {len(self.token_choices)} stages, depths {len(self.depths)}')
        num_patches = (self.img_size // self.patch_size) ** 2
        previous = num_patches
        for s, choices in enumerate(self.token_choices):
            if not choices or max(choices) > previous:
                raise ValueError(f'stage {s} token choices {choices} must be non-empty and at most {previous} (the '
                                 f'fewest tokens the stage before can give)')
            for n in choices if self.pooling == '2d' else ():
                grid_side(n)
            previous = min(choices)
        starts = [sum(self.depths[:s]) for s in range(len(self.depths))]
        object.__setattr__(self, 'pairs', tuple(
            start + j for start, d in zip(starts, self.depths) for j in range(1, d, 2)))

    @property
    def size(self) -> int:
        """The number of members."""
        n = 2 ** len(self.pairs)
        for choices in self.token_choices:
            n *= len(choices)
        return n

    def arch(self, num_tokens: Sequence[int], shared_layers: Sequence[int] = ()) -> Arch:
        """A member from its token numbers and the layers that share (each must be the second of a pair)."""
        bad = set(shared_layers) - set(self.pairs)
        if bad:
            raise ValueError(f'layers {sorted(bad)} are not the second of a pair; the space lets {self.pairs} share')
        for s, n in enumerate(num_tokens):
            if n not in self.token_choices[s]:
                raise ValueError(f'stage {s} has token choices {self.token_choices[s]}, not {n}')
        return Arch(tuple(num_tokens), tuple(i in shared_layers for i in range(sum(self.depths))))

    def sample(self, rng: random.Random) -> Arch:
        """A uniformly drawn member."""
        return self.arch([rng.choice(c) for c in self.token_choices], [i for i in self.pairs if rng.random() < 0.5])

    def mutate(self, arch: Arch, rng: random.Random, prob: float = 0.2) -> Arch:
        """Redraw each token choice and flip each sharing choice with probability prob."""
        tokens = [rng.choice(c) if rng.random() < prob else n for n, c in zip(arch.num_tokens, self.token_choices)]
        shared = [i for i in self.pairs if arch.share_attention[i] != (rng.random() < prob)]
        return self.arch(tokens, shared)

    def crossover(self, a: Arch, b: Arch, rng: random.Random) -> Arch:
        """Each stage's token number and each pair's sharing choice from one parent or the other."""
        tokens = [rng.choice(pair) for pair in zip(a.num_tokens, b.num_tokens)]
        shared = [i for i in self.pairs if rng.choice((a, b)).share_attention[i]]
        return self.arch(tokens, shared)

    def macs(self, arch: Arch) -> int:
        """Multiply-accumulates of one image through the member, counted by hand (`psvit_macs`)."""
        return psvit_macs(self.depths, arch.num_tokens, arch.share_attention, self.embed_dim, self.img_size,
                          self.patch_size, mlp_ratio=self.mlp_ratio, num_classes=self.num_classes)

    def largest(self) -> Arch:
        """The member with the most tokens and no sharing: the supernet's own configuration."""
        return self.arch([max(c) for c in self.token_choices])

    def cheapest(self) -> Arch:
        """The member with the fewest MACs: the fewest tokens and every pair sharing."""
        return self.arch([min(c) for c in self.token_choices], self.pairs)

    def build_supernet(self, **kwargs) -> PSViT:
        """A PSViT holding the weights of every member: the most tokens, every layer with its own q/k/v."""
        largest = self.largest()
        return PSViT(img_size=self.img_size, patch_size=self.patch_size, num_classes=self.num_classes,
                     embed_dim=self.embed_dim, num_heads=self.num_heads, depths=self.depths,
                     num_tokens=largest.num_tokens, pooling=self.pooling, mlp_ratio=self.mlp_ratio, **kwargs)

    def build_subnet(self, arch: Arch, **kwargs) -> PSViT:
        """A standalone PSViT of one member (sharing layers without q/k), e.g. to retrain the searched model."""
        return PSViT(img_size=self.img_size, patch_size=self.patch_size, num_classes=self.num_classes,
                     embed_dim=self.embed_dim, num_heads=self.num_heads, depths=self.depths,
                     num_tokens=arch.num_tokens, share_attention=arch.share_attention, pooling=self.pooling,
                     mlp_ratio=self.mlp_ratio, **kwargs)
