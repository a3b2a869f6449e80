"""`editvit analyze`: attention-sink metrics (Fig. 1) and sequential attention maps (Fig. 5) for EDIT and ViTs."""
import argparse
import math
import os
import time
from typing import List

from . import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        'analyze', help='measure the attention sink and draw the sequential attention maps of a model',
        description='Writes DIR/metrics.json, metrics.csv, attention_sink.png (Fig. 1a), attention_blocks.png '
                    '(Fig. 1b) and maps/<image>.png (Fig. 5). Without --checkpoint the weights are random.')
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument('--model', help='timm model name, e.g. edit_small_patch16_224, deit3_small_patch16_224, '
                                       'vit_small_patch14_dinov2')
    which.add_argument('--run', metavar='DIR', help='a training run folder: its model, kwargs and final weights')
    p.add_argument('--model-kwargs', nargs='*', default=[], metavar='KEY=VALUE',
                   help='constructor kwargs of --model, e.g. img_size=224 num_classes=0')
    p.add_argument('--checkpoint', help='weights for --model (.safetensors or a torch checkpoint)')
    p.add_argument('--pretrained', action='store_true',
                   help="timm's pretrained weights for --model (from the local cache, or downloaded)")
    p.add_argument('--images', nargs='+', metavar='DIR|FILE',
                   help="image files or folders; a folder gives the image files in it and in its subfolders, sorted "
                        "by path, as torchvision's ImageFolder reads one (default: scikit-image's chelsea, coffee, "
                        "astronaut, rocket)")
    p.add_argument('--compare', metavar='NAME2', help='a second model, analysed on the same images')
    p.add_argument('--checkpoint2', help='weights for --compare')
    p.add_argument('--compare-kwargs', nargs='*', default=[], metavar='KEY=VALUE',
                   help='constructor kwargs of --compare')
    p.add_argument('--pretrained2', action='store_true', help="timm's pretrained weights for --compare")
    p.add_argument('--maps', choices=('attention', 'rollout'), default='attention',
                   help="Fig. 5 maps: the [CLS] query's attention per layer (default) or attention rollout")
    p.add_argument('--remove-cls', choices=('mask', 'drop'),
                   help='analyse --model without its [CLS]: mask = no query may attend to it, drop = not in the '
                        'sequence; where does the attention go? (--compare the same model to see it with [CLS])')
    p.add_argument('--test-time-registers', type=int, default=0, metavar='R',
                   help="find --model's register neurons (Jiang et al. 2025), add R test-time registers and measure "
                        "again: the numbers before and after (a timm ViT)")
    p.add_argument('--register-neurons', type=int, metavar='K',
                   help='how many register neurons the test-time registers take over (default: 10)')
    p.add_argument('--high-norm-ratio', type=float, metavar='X',
                   help="a high-norm outlier token's norm exceeds X times its image's median (default: 4)")
    p.add_argument('--high-norm-threshold', type=float, metavar='NORM',
                   help='Darcet et al.\'s test instead: a norm above NORM (they used 150 on DINOv2-L\'s output)')
    p.add_argument('--batch-size', type=int, default=16, help='images per forward pass (default: 16)')
    p.add_argument('--no-plots', action='store_true', help='write the metrics only')
    p.add_argument('--output', required=True, metavar='DIR', help='folder for the results')
    p.add_argument('--threads', type=int, default=None,
                   help='torch CPU threads (default: the idle cores, cores minus the 1-minute load)')
    p.set_defaults(func=run)


def _specs(args: argparse.Namespace) -> List:
    from ..analysis.model_spec import ModelSpec
    from .train import parse_kwargs

    if args.run:
        if args.checkpoint or args.pretrained or args.model_kwargs:
            raise UsageError('--run DIR takes the model, kwargs and weights from the run; drop --checkpoint, '
                             '--pretrained and --model-kwargs')
        first = ModelSpec.from_run(args.run)
    else:
        first = ModelSpec(args.model, args.checkpoint, parse_kwargs(args.model_kwargs), args.pretrained)
    specs = [first]
    if args.compare:
        specs.append(ModelSpec(args.compare, args.checkpoint2, parse_kwargs(args.compare_kwargs), args.pretrained2))
    elif args.checkpoint2 or args.compare_kwargs or args.pretrained2:
        raise UsageError('--checkpoint2, --compare-kwargs and --pretrained2 need --compare NAME2')
    return specs


def run(args: argparse.Namespace) -> int:
    from ..analysis import run_analysis
    from ..threads import set_threads

    if args.batch_size < 1:
        raise UsageError(f'--batch-size must be at least 1, got {args.batch_size}')
    if args.test_time_registers < 0 or (args.register_neurons is not None and args.register_neurons < 1):
        raise UsageError('--test-time-registers must be 0 or more and --register-neurons at least 1')
    if args.high_norm_ratio is not None and args.high_norm_ratio <= 1:
        raise UsageError(f'--high-norm-ratio must be above 1 (a multiple of the median norm), got '
                         f'{args.high_norm_ratio}')
    if args.high_norm_threshold is not None and not 0 < args.high_norm_threshold < math.inf:
        raise UsageError(f'--high-norm-threshold must be a finite norm above 0, got {args.high_norm_threshold}')
    if args.threads is not None and args.threads < 1:
        raise UsageError(f'--threads must be at least 1, got {args.threads}')
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise UsageError(f'output {args.output!r} is a file, not a folder; choose another --output')
    if args.register_neurons is not None and not args.test_time_registers:
        raise UsageError('--register-neurons K needs --test-time-registers R')
    specs = _specs(args)
    threads = set_threads(args.threads)
    start = time.perf_counter()
    # the library's defaults where an option is not given
    given = dict(register_neurons=args.register_neurons, high_norm_ratio=args.high_norm_ratio)
    defaults = {k: v for k, v in given.items() if v is not None}
    analyses = run_analysis(specs[0], args.output, images=args.images, compare=specs[1] if len(specs) > 1 else None,
                            map_method=args.maps, batch_size=args.batch_size, plots=not args.no_plots,
                            remove_cls=args.remove_cls, test_time_registers=args.test_time_registers,
                            high_norm_threshold=args.high_norm_threshold, **defaults)
    for analysis in analyses:
        m = analysis.metrics
        s = m['summary']
        size = 'x'.join(str(v) for v in m['input_size'])
        print(f'{analysis.name}: {m["weights"]}; {size} px, {m["num_patches"]} patches + {m["num_prefix_tokens"]} '
              f'prefix token(s); {m["num_layers"]} layers x {m["num_heads"]} heads; {m["num_images"]} images')
        for note in m['notes']:
            print(f'  note: {note}')
        if m.get('remove_cls'):
            how = 'masked as a key in every layer' if m['remove_cls'] == 'mask' else 'dropped from the sequence'
            print(f'  intervention: [CLS] {how} (--remove-cls {m["remove_cls"]}); the weights are unchanged')
        if 'mean_sink_ratio' in s:
            print(f'  sink ratio [CLS]/other: mean {s["mean_sink_ratio"]:.2f}, min {s["min_sink_ratio"]:.2f}, '
                  f'> 10 in {s["layers_with_sink_ratio_over_10"]}/{m["num_layers"]} layers')
        cls_rate = f'[CLS] > {m["cls_sink_epsilon"]:g}: {s["cls_sink_rate"]:.2f}, ' if 'cls_sink_rate' in s else ''
        print(f'  most-attended token / other: mean {s["mean_max_token_ratio"]:.2f}; sink rate ({cls_rate}any token > '
              f'{m["sink_uniform_multiple"]:g}/N: {s["token_sink_rate"]:.2f}); entropy {s["mean_entropy"]:.2f} '
              f'(uniform {m["uniform_entropy"]:.2f})')
        test = (f'norm > {m["high_norm_threshold"]:g}' if m['high_norm_threshold'] is not None
                else f'norm > {m["high_norm_ratio"]:g}x median')
        print(f'  token norms: largest / median up to {s["max_norm_ratio"]:.2f}; high-norm tokens ({test}) '
              f'{s["mean_high_norm_fraction"]:.3f}, in {s["layers_with_high_norm_tokens"]}/{m["num_layers"]} layers')
        peak = max(m['layers'], key=lambda layer: layer['top_activation_ratio'])
        top = peak['massive_top'][0]
        print(f'  massive activations (> {m["massive_magnitude"]:g} and > {m["massive_ratio"]:g}x median): in '
              f'{s["layers_with_massive_activations"]}/{m["num_layers"]} layers; largest / median up to '
              f'{s["max_top_activation_ratio"]:.0f} (layer {peak["layer"]}: dim {top["dim"]} of {top["token"]})')
        if 'cls_query_entropy_first' in s:
            print(f'  [CLS] query entropy over patches: layer 1 {s["cls_query_entropy_first"]:.2f} -> layer '
                  f'{m["num_layers"]} {s["cls_query_entropy_last"]:.2f}')
        if 'test_time_registers' in m:
            _print_test_time_registers(m)
        for name, reason in m['not_applicable'].items():
            print(f'  not applicable: {name} ({reason})')
    print(f'wrote {args.output} in {time.perf_counter() - start:.1f}s ({threads} thread(s))')
    return 0


def _print_test_time_registers(m: dict) -> None:
    """Two lines: the register neurons found, and the main numbers without -> with the test-time registers."""
    t = m['test_time_registers']
    if t['neurons']:
        layers = sorted({n['layer'] for n in t['neurons']})
        found = (f'{len(t["neurons"])} register neurons in layer(s) {", ".join(map(str, layers))}, from outlier tokens '
                 f'in {t["images_with_outliers"]}/{t["num_images"]} images at layer {t["outlier_layer"]}')
    else:
        found = f'no outlier token at layer {t["outlier_layer"]}, so no register neurons: the extra token(s) alone'
    print(f'  test-time registers ({t["num_registers"]}): {found}')
    s, a = m['summary'], t['after']['summary']
    pairs = [('high-norm tokens', 'mean_high_norm_fraction', '.3f'), ('largest / median norm', 'max_norm_ratio', '.2f'),
             ('most-attended / other', 'mean_max_token_ratio', '.2f'), ('[CLS] sink ratio', 'mean_sink_ratio', '.2f')]
    print('    ' + '; '.join(f'{label} {s[key]:{fmt}} -> {a[key]:{fmt}}' for label, key, fmt in pairs
                             if s.get(key) is not None and a.get(key) is not None))
