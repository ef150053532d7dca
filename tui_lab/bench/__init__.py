"""`tui-lab bench`: training, decoding, tokenization and start-up figures, side by side in one run.

Every figure is the median of ≥ 3 repetitions taken alternately with its reference
(:mod:`.stats`), with min and max beside it. Modules: :mod:`.training` (tui-lab vs
transformers, tokens/s and MFU), :mod:`.decode` (static KV cache vs the sliced one, no cache
and transformers' ``generate``), :mod:`.tokenize`, :mod:`.startup` (first frame vs a bare
Textual app).
"""

from __future__ import annotations

from .decode import bench_decode
from .startup import STARTUP_REPEATS, bench_startup
from .stats import MIN_REPEATS
from .tokenize import bench_tokenize
from .training import (PEAK_BF16_FLOPS, bench_training, device_peak, logits_loss, reference_model, time_training,
                       training_timer)

__all__ = ["MIN_REPEATS", "PEAK_BF16_FLOPS", "STARTUP_REPEATS", "bench_decode", "bench_startup", "bench_tokenize", "bench_training",
           "device_peak", "logits_loss", "reference_model", "time_training", "training_timer"]
