"""How far a run has got: the counters saved in ``last.state.pt`` and restored on resume."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any


@dataclass
class Progress:
    """``step``: optimizer steps done; ``tokens_seen``: training tokens over every process;
    ``elapsed_s``: the training clock in seconds (see :func:`tui_lab.runs.metrics.tokens_per_second`);
    ``best_*``: the evaluation with the lowest validation loss; ``bad_evals``: evaluations
    since it (early stopping); ``n_evals``: evaluations done after step 0."""

    step: int = 0
    tokens_seen: int = 0
    best_val_loss: float = math.inf
    best_step: int | None = None
    best_epoch: int | None = None
    bad_evals: int = 0
    n_evals: int = 0
    elapsed_s: float = 0.0

    def state_dict(self) -> dict[str, Any]:
        """Plain numbers (an infinite best loss saved as None)."""
        return {f.name: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for f in fields(self) for v in [getattr(self, f.name)]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        names = {f.name for f in fields(self)}
        for k, v in state.items():
            if k in names:
                setattr(self, k, v)
        self.best_val_loss = state.get("best_val_loss") or math.inf
