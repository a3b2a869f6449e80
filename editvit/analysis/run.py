"""`editvit analyze` as one library call: models, images, metrics files and pictures."""
from contextlib import nullcontext
from pathlib import Path
from typing import List, Optional, Sequence, Union

from ..errors import ConfigError
from .analyze import ModelAnalysis, analyze_model
from .cls_removal import check_removable, cls_removed
from .extract import attention_blocks
from .image_labels import image_titles, predictions
from .images import find_image_files, load_images, safe_file_name
from .model_spec import ModelSpec, build_model, describe
from .register_neurons import NUM_REGISTER_NEURONS, check_test_time_registers, measure_test_time_registers
from .report import write_metrics
from .sink_measures import HIGH_NORM_RATIO

PathLike = Union[str, Path]


def _plot_functions():
    try:
        from .plots import plot_blocks, plot_sequential_maps, plot_sink
    except ImportError as e:
        raise ConfigError(f"drawing the pictures needs matplotlib ({e}): pip install 'editvit[plots]', or pass "
                          f"--no-plots for the metrics alone") from e
    return plot_sink, plot_blocks, plot_sequential_maps


def _labels(specs: Sequence[ModelSpec]) -> List[str]:
    """Names to show: the spec's label, else its model name, with the weights' file when two names are alike."""
    labels = [spec.label or spec.name for spec in specs]
    if len(set(labels)) < len(labels):
        labels = [f'{label} ({Path(spec.checkpoint).stem if spec.checkpoint else spec.source()})'
                  for label, spec in zip(labels, specs)]
    return labels


def run_analysis(
        model: Union[str, ModelSpec],
        output_dir: PathLike,
        checkpoint: Optional[PathLike] = None,
        images: Optional[Sequence[PathLike]] = None,
        compare: Optional[Union[str, ModelSpec]] = None,
        checkpoint2: Optional[PathLike] = None,
        map_method: str = 'attention',
        batch_size: int = 16,
        plots: bool = True,
        remove_cls: Optional[str] = None,
        test_time_registers: int = 0,
        register_neurons: int = NUM_REGISTER_NEURONS,
        high_norm_ratio: float = HIGH_NORM_RATIO,
        high_norm_threshold: Optional[float] = None,
) -> List[ModelAnalysis]:
    """Analyse model (and compare, if given) on the images and write to output_dir:

    metrics.json, metrics.csv, attention_sink.png (Fig. 1a), attention_blocks.png (Fig. 1b) and
    maps/<image>.png (Fig. 5, one per image).

    Args:
        model: timm model name (EDIT or a ViT), or a ModelSpec (kwargs, pretrained weights, a run folder).
        output_dir: Folder for the results (created).
        checkpoint: Weights for a model given by name; random initialisation if None.
        images: Image files or folders; scikit-image's sample photos if None or empty.
        compare: A second model (name or ModelSpec), analysed on the same images and drawn beside the first.
        checkpoint2: Weights for a second model given by name.
        map_method: 'attention' or 'rollout' for the Fig. 5 maps.
        batch_size: Images per forward pass.
        plots: Draw the PNGs (False: metrics only).
        remove_cls: Analyse `model` without its [CLS] ('mask': no query attends to it; 'drop': not in the sequence;
            see `cls_removal`); the compared model runs as it is, so `compare` may be the same model with [CLS].
        test_time_registers: If > 0, find `register_neurons` register neurons of `model`, add this many test-time
            registers and measure again (`register_neurons.measure_test_time_registers`): metrics.json's
            `test_time_registers` holds the neurons and the numbers with the registers.
        high_norm_ratio, high_norm_threshold: The high-norm outlier test: a norm over this ratio to the image's
            median token norm, or (if given) over this absolute norm, Darcet et al.'s test.
    """
    output_dir = Path(output_dir)
    specs = [model if isinstance(model, ModelSpec) else ModelSpec(model, checkpoint)]
    if compare is not None:
        specs.append(compare if isinstance(compare, ModelSpec) else ModelSpec(compare, checkpoint2))
    # create every model before the first long step, so a bad name or checkpoint fails at once
    built = [build_model(spec) for spec in specs]
    for m, _ in built:
        attention_blocks(m)
    labels = _labels(specs)
    contexts = [nullcontext() for _ in specs]
    if test_time_registers:
        if remove_cls is not None:
            raise ConfigError('test-time registers and [CLS] removal are separate experiments: give one of them')
        check_test_time_registers(built[0][0])
    if remove_cls is not None:
        check_removable(built[0][0], remove_cls)  # before the first long step
        contexts[0] = cls_removed(built[0][0], remove_cls)
        labels[0] = f'{labels[0]} without [CLS] ({remove_cls})'
    named_images = load_images(images)
    analyses = []
    for (m, notes), spec, label, context in zip(built, specs, labels, contexts):
        with context:
            analysis = analyze_model(m, named_images, name=label, map_method=map_method, batch_size=batch_size,
                                     high_norm_ratio=high_norm_ratio, high_norm_threshold=high_norm_threshold)
            analysis.metrics.update(describe(m))  # the token layout as analysed (--remove-cls drop: one fewer)
        analysis.metrics['checkpoint'] = str(spec.checkpoint) if spec.checkpoint is not None else None
        analysis.metrics.update(architecture=spec.name, weights=spec.source(), model_kwargs=dict(spec.model_kwargs),
                                notes=notes)
        analyses.append(analysis)
    analyses[0].metrics['remove_cls'] = remove_cls
    if test_time_registers:
        analyses[0].metrics['test_time_registers'] = measure_test_time_registers(
            built[0][0], named_images, test_time_registers, register_neurons, batch_size=batch_size,
            map_method=map_method, high_norm_ratio=high_norm_ratio, high_norm_threshold=high_norm_threshold)
    write_metrics([a.metrics for a in analyses], output_dir)
    if plots:
        plot_sink, plot_blocks, plot_sequential_maps = _plot_functions()
        plot_sink(analyses, output_dir / 'attention_sink.png')
        plot_blocks(analyses, output_dir / 'attention_blocks.png')
        titles = image_titles(analyses[0].image_names, find_image_files(images) if images else None)
        # a prediction is shown for trained weights only: a random model's top class says nothing
        predicted = [predictions(m, named_images, batch_size) if spec.source() != 'random weights' else None
                     for spec, (m, _) in zip(specs, built)]
        names = [safe_file_name(n) for n in analyses[0].image_names]
        for i, name in enumerate(names):
            if names.count(name) > 1:  # the same stem in two folders
                name = f'{i:03d}_{name}'
            plot_sequential_maps(analyses, i, output_dir / 'maps' / f'{name}.png', title=titles[i],
                                 predictions=[p[i] if p else None for p in predicted])
    return analyses
