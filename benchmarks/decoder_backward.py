"""The folded decoder's token side: hand-written backward vs plain autograd, forward + backward, paired rounds.

    python benchmarks/decoder_backward.py            # EDIT-T and EDIT-S widths, batch 8, 196 tokens, one thread
"""
import argparse
import statistics
import time

import torch

from editvit.models.layers.folded_attention import folded_token_attention


def autograd_reference(x, q_k, s_cls, x_cls, s_0):
    """The same function written with plain tensor ops, differentiated by autograd."""
    scores = torch.cat([s_cls, q_k @ x.transpose(1, 2)], -1) + s_0  # (B, H, 1+N)
    attn = scores.softmax(-1)
    return attn, attn[..., 1:] @ x + attn[..., :1] * x_cls.unsqueeze(1)  # (B, H, 1+N), (B, H, D)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--widths', type=int, nargs='+', default=[192, 384])
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--tokens', type=int, default=196)
    parser.add_argument('--rounds', type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f'torch {torch.__version__}, one thread, CPU time, batch {args.batch_size}, {args.tokens} tokens')
    for D in args.widths:
        B, N = args.batch_size, args.tokens
        inputs = [torch.randn(B, N, D), torch.randn(B, 1, D), torch.randn(B, 1, 1), torch.randn(B, D),
                  torch.randn(B, 1, 1)]
        inputs = [t.requires_grad_() for t in inputs]

        def step(fn):
            attn, mixed = fn(*inputs)
            (mixed.square().sum() + attn.sum()).backward()

        for fn in (autograd_reference, folded_token_attention):
            step(fn), step(fn)
        pairs = []
        for _ in range(args.rounds):
            t0 = time.process_time()
            step(autograd_reference)
            t1 = time.process_time()
            step(folded_token_attention)
            t2 = time.process_time()
            pairs.append((t1 - t0, t2 - t1))
        ref = statistics.median(p[0] for p in pairs) * 1e3
        own = statistics.median(p[1] for p in pairs) * 1e3
        ratio = statistics.median(p[1] / p[0] for p in pairs)
        print(f'D={D}: autograd {ref:.2f} ms, hand-written backward {own:.2f} ms, paired ratio {ratio:.2f}')


if __name__ == '__main__':
    main()
