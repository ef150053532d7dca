"""The selected run's figures: status, step, losses, perplexity, throughput, time, GPU."""

from __future__ import annotations

import io

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text
from textual.widget import Widget

from ...runs.follow import RunSnapshot
from .format import fmt_duration, fmt_float, fmt_int, fmt_ppl, printable, status_style


WIDE = ("step", "epoch", "elapsed", "eta", "loss", "val_loss", "val_ppl", "best", "tps", "lr", "tokens", "params")
NARROW = ("step", "eta", "loss", "val_loss", "val_ppl", "best", "tps", "elapsed")


def _pair(label: str, value: str, style: str = "bold") -> Text:
    return Text.assemble((label + " ", "dim"), (value, style))


class RunStats(Widget):
    """A header line (run, status) and a grid of label/value pairs that reflows to the
    width: four columns when there is room, two when narrow. Rendered as Text, never
    markup (run messages are data)."""

    DEFAULT_CSS = """
    RunStats { height: auto; padding: 0 1; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.snapshot: RunSnapshot | None = None
        self.placeholder = "no run selected: highlight an experiment and press t to train it"
        self._lines = 1

    def show(self, snapshot: RunSnapshot | None, placeholder: str | None = None) -> None:
        """New figures; the layout is recomputed only when the number of lines changes (a
        reflow of the whole screen 4 times a second would cost more than everything else)."""
        self.snapshot = snapshot
        if placeholder is not None:
            self.placeholder = placeholder
        _, lines = self._build(self.size.width)
        self.refresh(layout=lines != self._lines)
        self._lines = lines

    def on_resize(self) -> None:
        self._lines = self._build(self.size.width)[1]

    def plain(self) -> str:
        """What the panel shows, as plain text."""
        console = Console(width=max(self.size.width, 40), file=io.StringIO(), record=True, color_system=None)
        console.print(self.render())
        return console.export_text()

    def render(self):
        return self._build(self.size.width)[0]

    def _build(self, width: int):
        """(renderable, number of lines) at ``width``."""
        snap = self.snapshot
        if snap is None:
            return Text(self.placeholder, style="dim"), 1
        info = snap.info
        status = snap.status
        step, total = snap.progress()
        last_train = snap.last("train") or {}
        last_eval = snap.last("eval") or {}
        head = Text.assemble((f"{snap.run.experiment}/{snap.run.run_id}", "bold"), "  ",
                             (status, status_style(status) or "bold"), no_wrap=True, overflow="ellipsis")
        if info.get("device"):
            head.append(f"  {info['device']}", style="dim")
            if info.get("device_name"):
                head.append(f" ({info['device_name']})", style="dim")
        p = {
            "step": _pair("step", f"{step:,}/{fmt_int(total)}"),
            "epoch": _pair("epoch", str(last_train.get("epoch", info.get("epoch", "-")))),
            "elapsed": _pair("elapsed", fmt_duration(snap.elapsed_s())),
            "eta": _pair("ETA", fmt_duration(snap.eta_s())),
            "loss": _pair("loss", fmt_float(last_train.get("train_loss"))),
            "val_loss": _pair("val loss", fmt_float(last_eval.get("val_loss"))),
            "val_ppl": _pair("val ppl", fmt_ppl(last_eval.get("val_ppl"))),
            "best": _pair("best", fmt_ppl(info.get("best_val_ppl"))),
            "tps": _pair("tokens/s", fmt_float(snap.tokens_per_s(), ",.0f")),
            "lr": _pair("lr", fmt_float(last_train.get("lr"), ".2e")),
            "tokens": _pair("tokens", fmt_int(last_train.get("tokens_seen", info.get("tokens_seen")))),
            "params": _pair("params", fmt_int(info.get("num_params"))),
        }
        pairs = [p[k] for k in WIDE]
        cols = _columns_that_fit(pairs, width)
        if cols == 2:  # narrow: the figures that matter most, in fewer lines
            pairs = [p[k] for k in NARROW]
        grid = Table.grid(padding=(0, 2), expand=False)
        for _ in range(cols):
            grid.add_column(no_wrap=True)
        for i in range(0, len(pairs), cols):
            grid.add_row(*pairs[i:i + cols])
        parts: list = [head, grid]
        ev = snap.evaluating
        if ev is not None:
            pct = f"{ev.fraction:.0%} · " if ev.fraction is not None else ""
            parts.append(Text.assemble(("evaluating ", "bold yellow"),
                                       f"{pct}{ev.tokens_done:,}/{fmt_int(ev.tokens_total, '?')} val tokens "
                                       f"(step {ev.step:,})", no_wrap=True, overflow="ellipsis"))
        if snap.gpu:
            parts.append(Text(snap.gpu, style="bold" if snap.gpu.startswith("GPU ") else "dim"))
        if info.get("message") and status != "running":
            parts.append(Text(printable(str(info["message"])), style="dim", overflow="ellipsis", no_wrap=True))
        return Group(*parts), 1 + -(-len(pairs) // cols) + len(parts) - 2


def _columns_that_fit(cells: list[Text], width: int, gap: int = 2) -> int:
    """The most columns (4, 3 or 2) whose widest cells fit side by side in ``width``."""
    for cols in (4, 3):
        widths = [max(c.cell_len for c in cells[i::cols]) for i in range(cols)]
        if sum(widths) + gap * (cols - 1) <= width:
            return cols
    return 2
