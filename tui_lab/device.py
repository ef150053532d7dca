"""Choosing the torch device by name (``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps``).

The bottom layer: training, generation and the benchmarks all pick devices here. torch is
imported inside the function, so importing this module stays free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import TuiLabError

if TYPE_CHECKING:
    import torch


class DeviceError(TuiLabError):
    """The requested device is not a device name or is not available on this machine."""


def resolve_device(name: str = "auto") -> "torch.device":
    """``auto`` picks CUDA, then MPS, then CPU; otherwise the named device.

    Raises:
        DeviceError: not a device name, or the named device is not available here.
    """
    import torch

    def mps_ok() -> bool:
        return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_ok() else torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"--device {name!r}: not a device name (auto, cpu, cuda, cuda:1, mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"--device {name}: CUDA is not available on this machine")
    if dev.type == "mps" and not mps_ok():
        raise DeviceError(f"--device {name}: MPS is not available on this machine")
    return dev
