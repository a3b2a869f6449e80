"""`editvit analyze`: attention-sink metrics (Fig. 1) and sequential attention maps (Fig. 5) for EDIT and ViTs."""
import argparse
import time

from . import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        'analyze', help='measure the attention sink and draw the sequential attention maps of a model',
        description='Writes DIR/metrics.json, metrics.csv, attention_sink.png (Fig. 1a), attention_blocks.png '
                    '(Fig. 1b) and maps/<image>.png (Fig. 5). Without --checkpoint the weights are random.')
    p.add_argument('--model', required=True, help='timm model name, e.g. edit_small_patch16_224, '
                                                   'deit3_small_patch16_224, vit_small_patch14_reg4_dinov2')
    p.add_argument('--checkpoint', help='weights for --model (.safetensors or a torch checkpoint)')
    p.add_argument('--images', nargs='+', metavar='DIR|FILE',
                   help="image files or folders (default: scikit-image's chelsea, coffee, astronaut, rocket)")
    p.add_argument('--compare', metavar='NAME2', help='a second model, analysed on the same images')
    p.add_argument('--checkpoint2', help='weights for --compare')
    p.add_argument('--maps', choices=('attention', 'rollout'), default='attention',
                   help="Fig. 5 maps: the [CLS] query's attention per layer (default) or attention rollout")
    p.add_argument('--batch-size', type=int, default=16, help='images per forward pass (default: 16)')
    p.add_argument('--no-plots', action='store_true', help='write the metrics only')
    p.add_argument('--output', required=True, metavar='DIR', help='folder for the results')
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..analysis import ImageDecodeError, UnsupportedModelError, run_analysis
    from ..errors import CheckpointError, ConfigError

    if args.checkpoint2 and not args.compare:
        raise UsageError('--checkpoint2 needs --compare NAME2')
    if args.batch_size < 1:
        raise UsageError(f'--batch-size must be at least 1, got {args.batch_size}')
    start = time.perf_counter()
    try:
        analyses = run_analysis(
            args.model, args.output, checkpoint=args.checkpoint, images=args.images, compare=args.compare,
            checkpoint2=args.checkpoint2, map_method=args.maps, batch_size=args.batch_size, plots=not args.no_plots)
    except (ImageDecodeError, ConfigError, CheckpointError, UnsupportedModelError) as e:
        raise UsageError(str(e)) from e
    for analysis in analyses:
        m = analysis.metrics
        s = m['summary']
        weights = 'random weights' if (args.checkpoint if analysis is analyses[0] else args.checkpoint2) is None \
            else 'checkpoint'
        print(f'{analysis.name} ({weights}, {m["num_layers"]} layers x {m["num_heads"]} heads, '
              f'{m["num_images"]} images)')
        if 'mean_sink_ratio' in s:
            print(f'  sink ratio [CLS]/other: mean {s["mean_sink_ratio"]:.2f}, min {s["min_sink_ratio"]:.2f}, '
                  f'> 10 in {s["layers_with_sink_ratio_over_10"]}/{m["num_layers"]} layers')
        print(f'  most-attended token / other: mean {s["mean_max_token_ratio"]:.2f}; sink rate '
              f'{s["sink_rate"]:.2f}; entropy {s["mean_entropy"]:.2f} (uniform {m["uniform_entropy"]:.2f}); '
              f'high-norm tokens {s["mean_high_norm_fraction"]:.3f}')
        if 'cls_query_entropy_first' in s:
            print(f'  [CLS] query entropy over patches: layer 1 {s["cls_query_entropy_first"]:.2f} -> layer '
                  f'{m["num_layers"]} {s["cls_query_entropy_last"]:.2f}')
        for name, reason in m['not_applicable'].items():
            print(f'  not applicable: {name} ({reason})')
    print(f'wrote {args.output} in {time.perf_counter() - start:.1f}s')
    return 0
