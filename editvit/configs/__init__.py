"""The recipes that ship with editvit, as YAML files inside the package (so an installed editvit finds them too).

    editvit train --config editvit/configs/cifar10_cpu.yaml ...     # from a checkout
    editvit.configs.recipe_path('in1k_pretrain')                    # from anywhere: the file's path

`in21k_pretrain`, `in1k_pretrain`, `transfer`: the three columns of the paper's Table 2. `cifar10_cpu`,
`fashion_mnist_cpu`: small CPU runs (the recipes of the demo and the suite). `segmenter_ade20k`: Segmenter's ADE20K
schedule (Table 5); `segmenter_synthetic_cpu`: a tiny segmentation run.
"""
from importlib.resources import files
from pathlib import Path
from typing import List

from ..errors import ConfigError


def list_recipes() -> List[str]:
    """The names of the shipped recipes, sorted."""
    return sorted(p.name[:-len('.yaml')] for p in files(__name__).iterdir() if p.name.endswith('.yaml'))


def recipe_path(name: str) -> Path:
    """The file of a shipped recipe, by name ('cifar10_cpu' or 'cifar10_cpu.yaml').

    Raises:
        ConfigError: no recipe of that name; the message lists the shipped ones.
    """
    stem = name[:-len('.yaml')] if name.endswith('.yaml') else name
    path = files(__name__) / f'{stem}.yaml'
    if not path.is_file():
        raise ConfigError(f'no shipped recipe {name!r}; the recipes are: {", ".join(list_recipes())}')
    return Path(str(path))
