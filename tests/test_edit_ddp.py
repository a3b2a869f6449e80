"""EDIT under DistributedDataParallel (2 CPU processes, gloo): every parameter is used and gradients are averaged."""
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from .common import tiny_edit

pytestmark = pytest.mark.slow  # two worker processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world)
    torch.manual_seed(0)
    model = tiny_edit()
    ddp = torch.nn.parallel.DistributedDataParallel(model)  # find_unused_parameters=False: all must get grads
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(rank))  # a different batch per rank
    ddp(x).logsumexp(-1).mean().backward()
    torch.save({n: p.grad for n, p in model.named_parameters()}, os.path.join(out_dir, f'grads{rank}.pt'))
    dist.destroy_process_group()


def test_ddp_averages_gradients_of_every_parameter(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    g0, g1 = (torch.load(tmp_path / f'grads{r}.pt', weights_only=True) for r in (0, 1))
    # the reference: the mean of the two single-process gradients
    torch.manual_seed(0)
    model = tiny_edit()
    expected = {}
    for rank in (0, 1):
        model.zero_grad()
        x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(rank))
        model(x).logsumexp(-1).mean().backward()
        for n, p in model.named_parameters():
            expected[n] = expected.get(n, 0) + p.grad / 2
    assert set(g0) == set(expected)
    for n in expected:
        assert torch.equal(g0[n], g1[n]), n
        torch.testing.assert_close(g0[n], expected[n], rtol=1e-5, atol=1e-7, msg=n)
