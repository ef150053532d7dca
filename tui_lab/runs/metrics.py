"""The definitions of the figures every screen, the CLI and the exports show for a run.

One function per figure, so the app, ``tui-lab train``'s progress bar and the result tables
cannot disagree (tests/test_figures.py checks that they agree).
"""

from __future__ import annotations

import math

MAX_LOG_PPL = 700.0
"""exp(700) ≈ 1e304: the largest loss whose perplexity is still a finite float64."""


def perplexity(loss_nats: float) -> float:
    """``exp(loss)`` of a mean cross-entropy in nats per token (or per word, for word-level
    perplexity), capped at ``exp(700)`` so a diverged run's figure stays a finite float."""
    return math.exp(min(float(loss_nats), MAX_LOG_PPL))


def tokens_per_second(tokens_seen: int | float | None, training_s: float | None) -> float | None:
    """A run's throughput: training tokens processed (all processes, ``tokens_seen``) divided
    by the training clock in seconds (``elapsed_s``: time in the training loop, evaluations
    included, start-up and tokenization excluded; resumed runs carry it over). None when
    either is missing or the clock has not started."""
    if tokens_seen is None or not training_s or training_s <= 0:
        return None
    return float(tokens_seen) / float(training_s)
