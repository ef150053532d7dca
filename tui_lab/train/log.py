"""What the loop logs between evaluations: the training-loss window and the memory figure."""

from __future__ import annotations

import resource
from typing import Any

import torch


class LossWindow:
    """Sum and count of the training losses since the last ``train`` event.

    The sum stays a float32 tensor on the device (no host sync per step); its value and
    count are saved in ``last.state.pt``, so a run resumed in the middle of a log window
    logs the same mean as an uninterrupted one (bit for bit: float32 in, float32 out).
    """

    def __init__(self, device: torch.device):
        self.total = torch.zeros((), device=device)
        self.count = 0

    def add(self, loss_sum: torch.Tensor, n: int) -> None:
        """Add ``n`` micro-batch losses whose sum is ``loss_sum`` (a 0-d tensor)."""
        self.total += loss_sum
        self.count += n

    def take(self) -> torch.Tensor:
        """The window's mean loss (a 0-d tensor) and a new, empty window."""
        mean = self.total / max(self.count, 1)
        self.total = torch.zeros_like(self.total)
        self.count = 0
        return mean

    def state_dict(self) -> dict[str, Any]:
        return {"sum": float(self.total.item()), "count": self.count}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if state:  # absent in states written before the window was saved: start empty
            self.total = torch.tensor(state["sum"], dtype=self.total.dtype, device=self.total.device)
            self.count = int(state["count"])


def memory_mb(device: torch.device) -> float:
    """Peak memory in MiB: allocated CUDA memory on CUDA, else this process's peak RSS (Linux: KiB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
