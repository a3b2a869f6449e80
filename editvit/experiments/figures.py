"""The pictures of trained models analysed on the same test images, as the demo and the full-scale runs draw them:
metrics.json / metrics.csv, attention_sink.png (Fig. 1a), attention_blocks.png (Fig. 1b) and maps/<class>_<image>.png
(Fig. 5) for the first test image of the first `maps` classes."""
from pathlib import Path
from typing import Sequence, Union

from ..analysis import plot_blocks, plot_sequential_maps, plot_sink, write_metrics
from ..analysis.analyze import ModelAnalysis
from ..analysis.images import safe_file_name

PathLike = Union[str, Path]


def draw_analyses(analyses: Sequence[ModelAnalysis], classes: Sequence[str], per_class: int, out: PathLike,
                  maps: int = 4) -> Path:
    """Write the metrics and pictures of analyses (the same images, `per_class` per class, class by class) to out."""
    out = Path(out)
    write_metrics([a.metrics for a in analyses], out)
    plot_sink(analyses, out / 'attention_sink.png')
    plot_blocks(analyses, out / 'attention_blocks.png')
    names = analyses[0].image_names
    for i in range(0, min(maps * per_class, len(names)), per_class):  # one image per class
        label = classes[i // per_class]
        plot_sequential_maps(analyses, i, out / 'maps' / f'{safe_file_name(f"{label}_{names[i]}")}.png',
                             title=f'{label} ({names[i]})')
    return out
