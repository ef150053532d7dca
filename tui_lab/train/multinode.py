"""Training across nodes: torchrun's c10d rendezvous, one run folder on a shared filesystem.

``tui-lab train NAME --nnodes N --node-rank R --rdzv-endpoint HOST:PORT --nproc-per-node P``
runs the same command on every node. torchrun's c10d rendezvous (the torchrun docs,
"elastic launch") gathers the N nodes and numbers the N·P workers; it assigns the global
ranks itself (sorted node descriptors), so ``--node-rank`` does not fix them. tui-lab gives
``--node-rank`` two jobs instead:

- node 0 hosts the rendezvous store at HOST:PORT (``is_host=1``; the others connect to it);
- node 0 creates the run folder before torchrun starts, and its local rank 0 is the
  **writer**: it evaluates, checkpoints and writes ``run.json`` / ``metrics.jsonl``
  (:attr:`DistContext.main_rank` is its global rank, found once after the process group forms).

**How the other nodes learn the run folder**: the writer broadcasts its absolute path over
the process group right after it forms (:func:`share_run_folder`). Nothing has to agree in
advance (no run id derived from the rendezvous id, no clock), and resume works the same
way. The path must name the same folder on every node — a shared filesystem (NFS, Lustre,
a cloud bucket mount) mounted at the same place. Each node then waits up to
:func:`shared_fs_timeout_s` seconds (env ``TUI_LAB_SHARED_FS_TIMEOUT_S``, default 60) for the
folder's ``config.json`` to appear (network filesystems cache directory entries); when any
node cannot see it, every node stops with an error naming that node and the path.

Every rank computes the same global data order (:class:`WindowSampler`, seeded by
``train.seed``; each rank takes its shard), so a run of N nodes × P processes follows the
same curve as one process with the same global batch.

**A lost node**: each node's local rank 0 stamps ``tui_lab/alive/<node rank>`` in the
rendezvous store every second (:class:`NodeBeats`). When a collective fails, the writer
names the nodes whose stamp stopped moving (:func:`describe_failure`), marks the run
``failed`` with that message, and exits; torchrun (``--max-restarts 0``) ends the job. Timeouts
keep a silent node (machine off, network cut) from hanging the others: the process group's
collective timeout (env ``TUI_LAB_DIST_TIMEOUT_S``, default 600 s) and torchrun's
rendezvous ``join_timeout`` (env ``TUI_LAB_RDZV_TIMEOUT_S``, default 600 s).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path

import torch.distributed as dist

from ..errors import TuiLabError


class MultiNodeError(TuiLabError):
    """The nodes of a job could not agree on, or reach, their run folder."""


def node_rank() -> int:
    """This node's ``--node-rank`` (env ``TUI_LAB_NODE_RANK``, set by ``tui-lab train`` for torchrun)."""
    return int(os.environ.get("TUI_LAB_NODE_RANK", "0") or 0)


def is_multinode() -> bool:
    """True in a torchrun worker whose job spans more than one node."""
    return int(os.environ.get("WORLD_SIZE", "1")) > int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))


def dist_timeout() -> timedelta:
    """The process group's collective timeout (env ``TUI_LAB_DIST_TIMEOUT_S``, default 600 s)."""
    return timedelta(seconds=float(os.environ.get("TUI_LAB_DIST_TIMEOUT_S") or 600))


def rdzv_timeout_s() -> int:
    """torchrun's rendezvous ``join_timeout`` in seconds (env ``TUI_LAB_RDZV_TIMEOUT_S``, default 600)."""
    return int(float(os.environ.get("TUI_LAB_RDZV_TIMEOUT_S") or 600))


def shared_fs_timeout_s() -> float:
    """How long a node waits to see the run folder (env ``TUI_LAB_SHARED_FS_TIMEOUT_S``, default 60)."""
    return float(os.environ.get("TUI_LAB_SHARED_FS_TIMEOUT_S") or 60)


def find_main_rank(rank: int, local_rank: int) -> tuple[int, dict[int, str]]:
    """``(writer's global rank, {node rank: host})``: the writer is local rank 0 of node 0.
    Every rank calls this once, right after the process group forms (one ``all_gather``).

    Raises:
        MultiNodeError: no node, or more than one, was started with ``--node-rank 0``.
    """
    if not is_multinode():
        return 0, {}
    table: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(table, (node_rank(), local_rank, rank, socket.gethostname()))
    hosts = {node: host for node, _, _, host in table}  # type: ignore[misc]
    writers = [r for node, local, r, _ in table if node == 0 and local == 0]  # type: ignore[misc]
    if len(writers) != 1:
        raise MultiNodeError(f"{len(writers)} nodes were started with --node-rank 0 (node ranks: "
                             f"{sorted(node for node, local, _, _ in table if local == 0)}); "  # type: ignore[misc]
                             f"give each node its own --node-rank from 0 to --nnodes - 1")
    return writers[0], hosts


def share_run_folder(path: Path | None, resume: bool, main_rank: int,
                     timeout_s: float | None = None) -> tuple[Path, bool]:
    """The writer's run folder (and whether it is a resume) on every rank, once every node sees it.

    Args:
        path: the run folder on node 0 (its ranks pass it; the other nodes' ranks None).
        resume: node 0's ``--resume`` (the others take node 0's word for it).
        main_rank: the writer's global rank (:func:`find_main_rank`).
        timeout_s: how long each node waits for ``path/config.json`` (default
            :func:`shared_fs_timeout_s`).

    Raises:
        MultiNodeError: on every rank, when any node could not see the folder in time
            (the message names the node(s), their host and the path).
    """
    box = [(str(Path(path).resolve()) if path is not None else None, resume)]
    dist.broadcast_object_list(box, src=main_rank)
    where, resume = box[0]  # type: ignore[misc]
    folder = Path(where)
    wait = shared_fs_timeout_s() if timeout_s is None else timeout_s
    deadline = time.monotonic() + wait
    seen = (folder / "config.json").is_file()
    while not seen and time.monotonic() < deadline:
        time.sleep(0.5)
        seen = (folder / "config.json").is_file()
    table: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(table, (node_rank(), socket.gethostname(), seen))
    blind = sorted({(n, h) for n, h, ok in table if not ok})  # type: ignore[misc]
    if blind:
        who = ", ".join(f"node {n} ({h})" for n, h in blind)
        raise MultiNodeError(f"{who} cannot see the run folder {folder} after {wait:g} s: "
                             f"multi-node runs need the runs folder on a filesystem every node shares "
                             f"(NFS, Lustre, a bucket mount), at the same path on each node")
    return folder, bool(resume)


_BEATS: "NodeBeats | None" = None


def join_job(path: Path | None, resume: bool, device):
    """A torchrun worker of a multi-node job joins it: process group, writer, run folder.

    Returns ``(ctx, device, run_folder, resume)``. Starts this node's liveness stamps
    (:class:`NodeBeats`, local rank 0). When a node cannot see the run folder, the writer
    marks the run ``failed`` with the message and every rank raises :class:`MultiNodeError`.
    """
    global _BEATS
    from ..runs.store import RunDir
    from .distributed import init_distributed

    ctx, device = init_distributed(device)
    _BEATS = NodeBeats([n for n, _ in ctx.hosts]).start(beat=ctx.local_rank == 0)
    try:
        folder, resume = share_run_folder(path, resume, ctx.main_rank)
    except MultiNodeError as exc:
        if ctx.is_main and path is not None:
            RunDir(Path(path)).update_run(status="failed", ended_at=time.time(), message=str(exc))
        raise
    return ctx, device, folder, resume


def failure_message(exc: BaseException, hosts: dict[int, str]) -> str:
    """``Type: message`` for a run that failed with ``exc``; in a multi-node job, prefixed by
    the nodes that stopped stamping (``lost node 1 (host)``) when there are any."""
    return describe_failure(exc, _BEATS, hosts)


class NodeBeats:
    """Per-node liveness stamps in the rendezvous store, to name a lost node after a failure.

    Local rank 0 of every node sets ``tui_lab/alive/<node>`` to its clock every ``interval``
    seconds from a daemon thread (a separate TCPStore client to ``MASTER_ADDR:MASTER_PORT``,
    the store torchrun's agents share). :meth:`lost` reads the stamps twice and returns the
    nodes whose stamp did not move.
    """

    PREFIX = "tui_lab/alive/"

    def __init__(self, nodes: list[int], interval: float = 1.0):
        self.nodes = sorted(set(nodes))
        self.interval = interval
        self._stop = threading.Event()
        self._store = None
        try:
            self._store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                                        is_master=False, timeout=timedelta(seconds=10))
        except (KeyError, ValueError, RuntimeError):
            self._store = None

    def start(self, beat: bool) -> "NodeBeats":
        if beat and self._store is not None:
            threading.Thread(target=self._loop, name="tui-lab-node-beat", daemon=True).start()
        return self

    def _loop(self) -> None:
        key = f"{self.PREFIX}{node_rank()}"
        while True:
            try:
                self._store.set(key, repr(time.time()))  # type: ignore[union-attr]
            except Exception:  # the store's host went away: nothing left to report to
                return
            if self._stop.wait(self.interval):
                return

    def _read(self) -> dict[int, str | None]:
        out: dict[int, str | None] = {}
        for n in self.nodes:
            key = f"{self.PREFIX}{n}"
            try:
                out[n] = self._store.get(key).decode() if self._store.check([key]) else None  # type: ignore[union-attr]
            except Exception:
                out[n] = None
        return out

    def lost(self) -> list[int]:
        """Nodes whose stamp did not change over three intervals (empty when unknown)."""
        if self._store is None:
            return []
        before = self._read()
        time.sleep(3 * self.interval)
        after = self._read()
        return [n for n in self.nodes if n != node_rank() and (after[n] is None or after[n] == before[n])]

    def stop(self) -> None:
        self._stop.set()


def describe_failure(exc: BaseException, beats: NodeBeats | None, hosts: dict[int, str]) -> str:
    """The run's failure message for ``exc``, naming lost nodes when a collective failed."""
    text = f"{type(exc).__name__}: {exc}".strip()
    if beats is None:
        return text
    lost = beats.lost()
    if not lost:
        return text
    who = ", ".join(f"node {n}" + (f" ({hosts[n]})" if hosts.get(n) else "") for n in lost)
    first = text.splitlines()[0] if text else ""
    return f"lost {who}: it stopped responding during training ({first[:300]})"
