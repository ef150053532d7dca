"""GPU utilisation and memory for the live panel, through NVIDIA's management library
(package nvidia-ml-py, module ``pynvml``), imported on first use in the watcher thread."""

from __future__ import annotations

import os
from typing import Any


class Gpu:
    """One NVML session; :meth:`line` says how busy a run's CUDA device is."""

    def __init__(self) -> None:
        self._nv: Any = None
        self._error: str | None = None

    def line(self, device: str) -> str | None:
        """``GPU 87% · 12.3/79.6 GiB`` for a CUDA device; None for other devices; a sentence
        saying why when NVML is missing or fails."""
        if not device.startswith("cuda"):
            return None
        if self._error:
            return self._error
        try:
            if self._nv is None:
                import pynvml

                pynvml.nvmlInit()
                self._nv = pynvml
        except ImportError:
            self._error = "GPU stats: NVML not installed (pip install nvidia-ml-py)"
            return self._error
        except Exception as exc:  # no driver, no permission
            self._error = f"GPU stats unavailable (NVML: {exc})"
            return self._error
        try:
            nv = self._nv
            handle = nvml_handle(nv, int(device.split(":")[1]) if ":" in device else 0)
            mem = nv.nvmlDeviceGetMemoryInfo(handle)
            util = nv.nvmlDeviceGetUtilizationRates(handle)
            return f"GPU {util.gpu}% · {mem.used / 2**30:.1f}/{mem.total / 2**30:.1f} GiB"
        except Exception as exc:
            return f"GPU stats unavailable (NVML: {exc})"


def nvml_handle(nv: Any, index: int) -> Any:
    """NVML numbers every GPU of the machine; CUDA numbers those in ``CUDA_VISIBLE_DEVICES``
    (which the training process inherits from the app)."""
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if index < len(visible):
        entry = visible[index]
        if entry.isdigit():
            return nv.nvmlDeviceGetHandleByIndex(int(entry))
        return nv.nvmlDeviceGetHandleByUUID(entry)
    return nv.nvmlDeviceGetHandleByIndex(index)
