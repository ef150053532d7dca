"""The highlighted experiment: its resolved config, tokens, and the Chinchilla arithmetic."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widget import Widget

from .format import fmt_count, fmt_int

CHINCHILLA_TOKENS_PER_PARAM = 20


def _value(v: Any) -> str:
    return json.dumps(v) if isinstance(v, (str, list, bool)) or v is None else f"{v:g}" if isinstance(v, float) else str(v)


class ExperimentDetail(Widget):
    """Rendered as Text (descriptions and prompts are data, never markup); the three config
    tables side by side when there is room."""

    DEFAULT_CSS = """
    ExperimentDetail { height: auto; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._args: tuple = (None, None, None, None, False)

    def show(self, name: str | None, exp: Any = None, counts: dict[str, Any] | None = None,
             latest: dict[str, Any] | None = None, counting: bool = False) -> None:
        """``counts``: the experiment's row of `tui-lab list --json` (``counting``: still on its
        way); ``latest``: its latest run's ``run.json``, for the counts until then."""
        self._args = (name, exp, counts, latest, counting)
        self.refresh(layout=True)

    def render(self):
        name, exp, counts, latest, counting = self._args
        if name is None or exp is None:
            return Text("no experiment", style="dim")
        counts, latest = counts or {}, latest or {}
        n_params = counts.get("num_params") or latest.get("num_params")
        tokens = counts.get("train_tokens") or latest.get("train_tokens")
        t = exp.train
        out = Text()
        out.append(name, style="bold")
        if exp.description:
            out.append(f"  {exp.description}", style="italic")
        out.append("\n\n")

        def row(label: str, value: str, style: str = "") -> None:
            out.append(f"{label:<22}", style="dim")
            out.append(value + "\n", style=style)

        n_text = fmt_int(n_params, "counting…" if counting else "-")
        row("parameters (N)", n_text + (f"  ({fmt_count(n_params)})" if n_params else ""), "bold")
        if tokens:
            ratio = tokens / n_params if n_params else None
            row("train tokens (D)", f"{tokens:,}  ({fmt_count(tokens)}, one epoch)", "bold")
            if ratio is not None:
                verdict = ("data-starved" if ratio < CHINCHILLA_TOKENS_PER_PARAM / 2 else
                           "about compute-optimal" if ratio <= CHINCHILLA_TOKENS_PER_PARAM * 2 else "data-rich")
                row("Chinchilla D/N", f"{ratio:,.2f}  (optimal ≈ {CHINCHILLA_TOKENS_PER_PARAM}: {verdict})", "bold")
            row("optimal N for this D", f"{tokens // CHINCHILLA_TOKENS_PER_PARAM:,}  (train tokens / "
                f"{CHINCHILLA_TOKENS_PER_PARAM})", "bold")
        else:
            row("train tokens (D)", "not known until the data is tokenized (train once)", "dim")
        if t.global_batch_size is not None:  # the same for any process count
            per_step = t.global_batch_size * exp.seq_len
            row("tokens per step", f"{per_step:,}  (global batch {t.global_batch_size} × seq {exp.seq_len})")
        else:  # one process; N processes train N times this
            per_step = t.batch_size * t.grad_accum_steps * exp.seq_len
            row("tokens per step", f"{per_step:,}  (batch {t.batch_size} × accum {t.grad_accum_steps} × seq {exp.seq_len})")
        budgets = []  # (tokens, why): the run ends at whichever comes first
        if t.max_steps:
            budgets.append((t.max_steps * per_step, f"{t.max_steps:,} steps"))
        if t.epochs and tokens:
            budgets.append((t.epochs * tokens, f"{t.epochs} epoch{'s' if t.epochs > 1 else ''}"))
        if budgets:
            planned, why = min(budgets)
            seen = f"{planned:,}  ({why}" + (f"; {planned / n_params:,.2f} per parameter" if n_params else "") + ")"
            row("planned tokens", seen)
        out.rstrip()
        sections = []
        for section, model in (("model", exp.model), ("data", exp.data), ("train", exp.train)):
            text = Text()
            text.append(f"[{section}]\n", style="bold")
            for key, value in model.model_dump().items():
                if value is None or value == []:
                    continue
                text.append(f"{key} = ", style="dim")
                text.append(_value(value) + "\n")
            text.rstrip()
            sections.append(text)
        model, data, train = sections
        width = self.size.width
        gap = 3

        def w(t: Text) -> int:
            return max(len(line) for line in t.plain.split("\n"))

        if w(model) + w(data) + w(train) + 2 * gap <= width:
            columns = [model, data, train]
        elif max(w(model), w(data)) + w(train) + gap <= width:
            columns = [Text("\n\n").join([model, data]), train]
        else:
            return Group(out, *[Group(Text(""), t) for t in sections])
        grid = Table.grid(padding=(0, gap))
        for _ in columns:
            grid.add_column(no_wrap=True)
        grid.add_row(*columns)
        return Group(out, Text(""), grid)
