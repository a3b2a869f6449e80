"""What the analysis pictures say: per-layer colour scales in Fig. 5, image classes and model predictions in the
titles, distinct labels for compared models, both lines of Fig. 1a visible, plain-number colour bar ticks."""
import numpy as np
import pytest
import torch
from matplotlib import colormaps
from PIL import Image

from editvit.analysis import ModelAnalysis, analyze_model, load_images, run_analysis
from editvit.analysis.image_labels import class_names, image_titles, predictions
from editvit.analysis.images import images_to_batch
from editvit.analysis.map_figure import MAP_ALPHA, MAP_CMAP, MIN_PEAK, _block_size, _panel_origin
from editvit.analysis.model_spec import ModelSpec
from editvit.analysis.plots import DPI, blocks_figure, map_scales, maps_figure, maps_figure_size, sink_figure
from editvit.analysis.run import _labels
from editvit.weights import save_model

from .common import tiny_edit


def planted_analysis(name: str, maps: torch.Tensor) -> ModelAnalysis:
    """An analysis of one uniformly grey image with the given Fig. 5 maps (1, L, h, w)."""
    L = maps.shape[1]
    layers = [dict(layer=i + 1, cls_attention=0.2, other_attention=0.004, max_token_attention=0.2,
                   max_token='cls') for i in range(L)]
    metrics = dict(layers=layers, has_cls=True, num_images=1,
                   summary=dict(mean_sink_ratio=50.0, mean_max_token_ratio=50.0))
    block = torch.full((L, 4, 4), 0.01)
    block[:, :, 0] = 0.3
    return ModelAnalysis(name=name, metrics=metrics, block=block, maps=maps, map_label='attention of [CLS] to patches',
                         images=np.full((1, 32, 32, 3), 0.5), image_names=['000002'])


def planted_maps() -> torch.Tensor:
    """Three layers over a 4x4 grid: a hot 2x2 corner (8x uniform), a mild one (3x), and uniform attention."""
    maps = torch.full((1, 3, 4, 4), 1 / 16)
    maps[0, 0, :2, :2] = 0.5
    maps[0, 1, :2, :2] = 3 / 16
    return maps


def test_each_fig5_panel_is_scaled_to_its_own_peak():
    scaled, scales, peaks = map_scales(planted_maps()[0])
    np.testing.assert_allclose(peaks, [0.5, 3 / 16, 1 / 16])
    # the uniform layer is scaled to MIN_PEAK x uniform, so it reads as a flat middle colour, not stretched noise
    np.testing.assert_allclose(scales, [0.5, 3 / 16, MIN_PEAK / 16])
    np.testing.assert_allclose(scaled.reshape(3, -1).max(axis=1), [1, 1, 1 / MIN_PEAK])
    np.testing.assert_allclose(scaled[2], np.full((4, 4), 1 / MIN_PEAK))
    np.testing.assert_allclose(scaled[0, 3, 3], (1 / 16) / 0.5)


def test_fig5_draws_the_peak_colour_in_every_layer_that_has_one():
    fig = maps_figure([planted_analysis('edit', planted_maps())], 0)
    drawn = fig.axes[0].images[0].get_array()  # the model's panels as one RGB image
    _, _, side = _block_size(3)
    cmap = colormaps[MAP_CMAP]
    for layer, level in enumerate([1.0, 1.0, 1 / MIN_PEAK]):
        y, x = _panel_origin(layer, side)
        corner, far = drawn[y + 10, x + 10], drawn[y + 150, x + 150]  # inside the hot corner, the opposite one
        np.testing.assert_allclose(corner, (1 - MAP_ALPHA) * 0.5 + MAP_ALPHA * np.array(cmap(level)[:3]), atol=2e-3)
    np.testing.assert_allclose(far, corner, atol=2e-3)  # the uniform layer is flat
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert {'layer 1: peak 8.0x', 'layer 2: peak 3.0x', 'layer 3: peak 1.0x'} <= set(texts)


def test_fig5_titles_carry_class_and_prediction():
    analyses = [planted_analysis('vit_small (run_a)', planted_maps()), planted_analysis('vit_small (run_b)',
                                                                                        planted_maps())]
    fig = maps_figure(analyses, 0, title='tabby (000002)', predictions=['tabby 62%', None])
    assert fig.get_suptitle() == 'Sequential attention maps (Fig. 5): tabby (000002)'
    headers = [t.get_text() for ax in fig.axes[:2] for t in ax.texts if t.get_text().startswith('vit_small')]
    assert headers == ['vit_small (run_a): attention of [CLS] to patches;  predicts tabby 62%',
                       'vit_small (run_b): attention of [CLS] to patches']
    w, h = maps_figure_size(2, 3)
    assert fig.get_size_inches() * DPI == pytest.approx([w * DPI, h * DPI])
    # without a title the image's name is shown
    assert maps_figure(analyses, 0).get_suptitle().endswith(': 000002')


def test_image_titles_name_the_class_folder(tmp_path):
    paths = [tmp_path / 'n02123045' / '000002.jpg', tmp_path / 'cat' / '000007.png']
    assert image_titles(['000002', '000007'], paths) == ['tabby (000002)', 'cat (000007)']
    assert image_titles(['chelsea', 'coffee']) == ['chelsea', 'coffee']  # the sample photos have no folder


def test_predictions_name_the_class(image_dir):
    model = tiny_edit().eval()
    assert class_names(model) == [f'class {i}' for i in range(10)]
    assert class_names(tiny_edit(num_classes=1000))[:2] == ['tench', 'goldfish']
    assert class_names(tiny_edit(num_classes=0)) is None
    images = load_images([image_dir])
    with torch.no_grad():
        probs = model(images_to_batch(images, model)).softmax(-1)  # (2, 10)
    expected = [f'class {i} {100 * p:.0f}%' for p, i in zip(*probs.max(-1))]
    assert predictions(model, images, batch_size=1) == expected


def test_run_analysis_titles_maps_with_folder_class_and_prediction(tmp_path, monkeypatch):
    folder = tmp_path / 'cat'
    folder.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / 'x.png')
    kwargs = dict(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, num_classes=10)
    save_model(tiny_edit(**kwargs), tmp_path / 'edit.safetensors')
    drawn = []
    monkeypatch.setattr('editvit.analysis.plots.plot_sequential_maps',
                        lambda analyses, i, path, title, predictions: drawn.append((title, predictions)))
    run_analysis(ModelSpec('edit_tiny_patch16_224', tmp_path / 'edit.safetensors', kwargs), tmp_path / 'out',
                 images=[folder], compare=ModelSpec('edit_tiny_patch16_224', None, kwargs))
    (title, (trained, random)), = drawn
    assert title == 'cat (x)'
    assert trained.startswith('class ') and trained.endswith('%') and random is None  # random weights: no guess


def test_compared_models_of_one_architecture_get_distinct_readable_titles():
    labels = _labels([ModelSpec('vit_small_patch14_dinov2', 'models/dinov2_vits14_imgfocus.safetensors'),
                      ModelSpec('vit_small_patch14_dinov2')])
    assert labels == ['vit_small_patch14_dinov2 (dinov2_vits14_imgfocus)', 'vit_small_patch14_dinov2 (random weights)']
    fig = sink_figure([planted_analysis(label, planted_maps()) for label in labels])
    titles = [ax.get_title() for ax in fig.axes[:2]]
    assert titles[0].startswith('vit_small_patch14_dinov2\n(dinov2_vits14_imgfocus)\n')
    assert titles[1].startswith('vit_small_patch14_dinov2 (random weights)\n')
    assert all(len(line) <= 52 for title in titles for line in title.splitlines())
    blocks = blocks_figure([planted_analysis(label, planted_maps()) for label in labels])
    assert [sub.get_suptitle() for sub in blocks.subfigs[0].subfigs] == labels


def test_fig1a_draws_cls_and_the_top_token_both_visible():
    fig = sink_figure([planted_analysis('vit', planted_maps())])
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    cls, top = lines['to [CLS]'], lines['to the most-attended token']
    np.testing.assert_allclose(cls.get_ydata(), top.get_ydata())  # [CLS] is the top token here
    # wide open rings under small filled squares: where they coincide both stay visible
    assert cls.get_markerfacecolor() == 'none' and cls.get_markersize() > 2 * top.get_markersize()
    assert cls.get_zorder() < top.get_zorder() and cls.get_linestyle() != top.get_linestyle()
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        'to [CLS]', 'to the most-attended token', 'to each other token (mean)']
    assert 'most-attended token in 3/3 layers' in fig.axes[0].get_title()


def test_fig1b_colour_bar_ticks_are_plain_numbers():
    fig = blocks_figure([planted_analysis('vit', planted_maps())])
    fig.canvas.draw()
    bar = fig.subfigs[1].axes[1]
    labels = [t.get_text() for t in bar.get_yticklabels() if t.get_text()]
    assert labels and all(float(label) > 0 for label in labels)  # '0.01', not '$\\mathdefault{10^{-2}}$'


def test_random_model_maps_read_flat(image_dir):
    analysis = analyze_model(tiny_edit(depth=2), load_images([image_dir]), name='edit')
    scaled, _, peaks = map_scales(analysis.maps[0])
    assert np.all(peaks < MIN_PEAK / 16) and scaled.max() < 1  # below the floor: never stretched to the peak colour
