"""Batches of training windows drawn from a 1-D token array, resumable mid-epoch."""

from __future__ import annotations

import numpy as np
import torch


class WindowSampler:
    """Non-overlapping windows of ``seq_len + 1`` tokens, shuffled once per epoch.

    Window ``w`` covers ``ids[w*seq_len : w*seq_len + seq_len + 1]`` (inputs are the first
    ``seq_len`` tokens, targets the last ``seq_len``). Each epoch visits every window once
    in an order drawn from ``seed + epoch``, so the order is reproducible and resuming at
    ``(epoch, batch)`` continues exactly where a run stopped. With ``world_size > 1`` each
    rank takes every ``world_size``-th batch-sized slice of the same order (DDP shards).

    Args:
        ids: 1-D integer array (e.g. a numpy memmap of token ids), length ≥ seq_len + 1.
        seq_len: tokens per training sequence (T).
        batch_size: sequences per batch per rank (B).
    Raises:
        ValueError: fewer than ``batch_size * world_size`` windows.
    """

    def __init__(self, ids: np.ndarray, seq_len: int, batch_size: int, seed: int,
                 rank: int = 0, world_size: int = 1):
        self.ids = ids
        self.seq_len = seq_len
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.n_windows = (len(ids) - 1) // seq_len
        if self.n_windows < batch_size * world_size:
            raise ValueError(
                f"{len(ids):,} tokens make {self.n_windows} windows of {seq_len} tokens: "
                f"fewer than one batch of {batch_size * world_size}; lower train.batch_size or train.seq_len"
            )
        self.epoch = 0
        self.batch_index = 0
        self._order: np.ndarray | None = None
        self._offsets = np.arange(seq_len + 1, dtype=np.int64)

    @property
    def batches_per_epoch(self) -> int:
        """Optimizer-independent count of batches one rank draws per epoch (last partial dropped)."""
        return self.n_windows // (self.batch_size * self.world_size)

    def _epoch_order(self) -> np.ndarray:
        if self._order is None:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            self._order = torch.randperm(self.n_windows, generator=g).numpy()
        return self._order

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """The next ``(x, y, epoch_ended)``: x, y LongTensor[B, T] on the CPU; ``epoch_ended``
        is True when this batch was the epoch's last (the sampler then moves to the next epoch)."""
        order = self._epoch_order()
        global_batch = self.batch_size * self.world_size
        start = self.batch_index * global_batch + self.rank * self.batch_size
        windows = order[start : start + self.batch_size]
        idx = windows[:, None].astype(np.int64) * self.seq_len + self._offsets[None, :]
        chunk = torch.from_numpy(np.asarray(self.ids[idx], dtype=np.int64))
        self.batch_index += 1
        ended = self.batch_index >= self.batches_per_epoch
        if ended:
            self.epoch += 1
            self.batch_index = 0
            self._order = None
        return chunk[:, :-1], chunk[:, 1:], ended

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batch_index": self.batch_index, "seed": self.seed,
                "n_windows": self.n_windows}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state.get("n_windows") not in (None, self.n_windows):
            raise ValueError(
                f"the checkpoint's data had {state['n_windows']} windows, this data has "
                f"{self.n_windows}: resume needs the same dataset, tokenizer and seq_len"
            )
        self.epoch = int(state["epoch"])
        self.batch_index = int(state["batch_index"])
        self._order = None
