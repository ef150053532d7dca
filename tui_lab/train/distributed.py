"""Multi-process data parallelism through ``torchrun`` (PyTorch DistributedDataParallel).

``tui-lab train NAME --nproc-per-node N`` prepares the run folder, then starts
``python -m torch.distributed.run --standalone --nproc-per-node N -m tui_lab train NAME
--attach RUN_DIR``. Each worker reads its rank from torchrun's environment
(``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``), joins the process group (NCCL on CUDA, gloo
on the CPU), draws its own shard of every batch, and only the writer (``main_rank``: rank 0
on one node; local rank 0 of node 0 across nodes, see :mod:`.multinode`) writes the run folder.
Reference: PyTorch DDP (Li et al., VLDB 2020) and the torchrun documentation.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job: ``rank`` of ``world_size``; ``local_rank`` on its node;
    ``main_rank`` the global rank of the writer (evaluates, checkpoints, writes the run folder);
    ``hosts`` node rank → host name (multi-node jobs only)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    main_rank: int = 0
    nnodes: int = 1
    hosts: tuple[tuple[int, str], ...] = ()

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == self.main_rank


_JOINED: DistContext | None = None


def under_torchrun() -> bool:
    """True inside a worker started by torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def init_distributed(device: torch.device) -> tuple[DistContext, torch.device]:
    """Join the torchrun process group (or return the single-process context).

    On CUDA each worker takes ``cuda:LOCAL_RANK`` and NCCL; otherwise gloo on the CPU.
    """
    global _JOINED
    if not under_torchrun():
        return DistContext(), device
    from .multinode import dist_timeout, find_main_rank

    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=dist_timeout())
    if _JOINED is None or _JOINED.rank != rank:
        main, hosts = find_main_rank(rank, local)
        _JOINED = DistContext(rank, world, local, main, max(1, len(hosts)), tuple(sorted(hosts.items())))
    return _JOINED, device


@contextmanager
def local_main_first(ctx: DistContext) -> Iterator[None]:
    """Run the block on each node's local rank 0 first, then on the other ranks.

    For work whose result lands in a shared cache (tokenizing a dataset): rank 0 fills the
    cache, the others then read it instead of tokenizing the same text N times over. Each
    rank reaches exactly one barrier, before the block (other ranks) or after it (rank 0).
    """
    if ctx.enabled and ctx.local_rank != 0:
        dist.barrier()
    yield
    if ctx.enabled and ctx.local_rank == 0:
        dist.barrier()


def any_rank(flag: bool, ctx: DistContext, device: torch.device) -> bool:
    """True on every rank when ``flag`` is True on any rank (stop requests, divergence)."""
    if not ctx.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def mean_over_ranks(value: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """The mean of a scalar tensor over all ranks (each rank's local mean, equal batch sizes)."""
    if not ctx.enabled:
        return value
    value = value.clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / ctx.world_size


def broadcast_from_main(obj: object, ctx: DistContext) -> object:
    """Rank 0's ``obj`` on every rank (decisions taken after rank 0's evaluation)."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=ctx.main_rank)
    return box[0]


def shutdown(ctx: DistContext) -> None:
    global _JOINED
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
    _JOINED = None
