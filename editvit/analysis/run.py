"""`editvit analyze` as one library call: models, images, metrics files and pictures."""
import re
from pathlib import Path
from typing import List, Optional, Sequence, Union

from ..models.factory import create_model
from .analyze import ModelAnalysis, analyze_model
from .extract import attention_blocks
from .images import load_images
from .plots import plot_blocks, plot_sequential_maps, plot_sink
from .report import write_metrics

PathLike = Union[str, Path]


def _file_name(name: str) -> str:
    return re.sub(r'[^A-Za-z0-9_.-]+', '_', name)


def run_analysis(
        model: str,
        output_dir: PathLike,
        checkpoint: Optional[PathLike] = None,
        images: Optional[Sequence[PathLike]] = None,
        compare: Optional[str] = None,
        checkpoint2: Optional[PathLike] = None,
        map_method: str = 'attention',
        batch_size: int = 16,
        plots: bool = True,
) -> List[ModelAnalysis]:
    """Analyse model (and compare, if given) on the images and write to output_dir:

    metrics.json, metrics.csv, attention_sink.png (Fig. 1a), attention_blocks.png (Fig. 1b) and
    maps/<image>.png (Fig. 5, one per image).

    Args:
        model: timm model name (EDIT or a ViT).
        output_dir: Folder for the results (created).
        checkpoint: Weights for model; random initialisation if None.
        images: Image files or folders; scikit-image's sample photos if None or empty.
        compare: A second model name, analysed on the same images and drawn beside the first.
        checkpoint2: Weights for the second model.
        map_method: 'attention' or 'rollout' for the Fig. 5 maps.
        batch_size: Images per forward pass.
        plots: Draw the PNGs (False: metrics only).
    """
    output_dir = Path(output_dir)
    named_images = load_images(images)
    specs = [(model, checkpoint)] + ([(compare, checkpoint2)] if compare else [])
    # create every model before the first long step, so a bad name or checkpoint fails at once
    models = [(name, create_model(name, checkpoint=ckpt).eval()) for name, ckpt in specs]
    for _, m in models:
        attention_blocks(m)
    analyses = [analyze_model(m, named_images, name=name, map_method=map_method, batch_size=batch_size)
                for name, m in models]
    for analysis, (_, ckpt) in zip(analyses, specs):
        analysis.metrics['checkpoint'] = str(ckpt) if ckpt is not None else None  # None: random weights
    write_metrics([a.metrics for a in analyses], output_dir)
    if plots:
        plot_sink(analyses, output_dir / 'attention_sink.png')
        plot_blocks(analyses, output_dir / 'attention_blocks.png')
        names = [_file_name(n) for n in analyses[0].image_names]
        for i, name in enumerate(names):
            if names.count(name) > 1:  # the same stem in two folders
                name = f'{i:03d}_{name}'
            plot_sequential_maps(analyses, i, output_dir / 'maps' / f'{name}.png')
    return analyses
