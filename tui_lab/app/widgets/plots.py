"""A curve panel drawn with textual-plotext, rebuilt from its data on every build.

plotext keeps state between builds (a log-scale figure cannot be built a second time: the
second ``build()`` raises ``IndexError``, a third ``ValueError``), so this widget never
relies on it: each build clears the figure, adds the series again and sets its own axes. A
log y axis is drawn as log10 of the values on a linear axis with ticks labelled in the
original units, so plotext's log-scale code is never used. Any error while building shows
as a message inside the panel; it never reaches the app.
"""

from __future__ import annotations

import math
import time
from typing import Callable

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip
from textual_plotext import PlotextPlot

REDRAW_MIN_INTERVAL_S = 0.1
"""At most ~10 redraws a second per plot, however fast data arrives."""
MAX_POINTS = 600
"""Longer series are thinned (evenly, keeping the last point) before plotting."""
MAX_ABS = 1e300
"""Values beyond ±this (a diverged run's loss) are drawn at ±this, so axis arithmetic stays finite."""
MIN_WIDTH, MIN_HEIGHT = 16, 6
NO_DATA = "no data yet"
"""What a plot says when no series has a point (unless :meth:`CurvePlot.set_series` says otherwise)."""
"""Smaller than this (cells), the panel says the terminal is too small instead of plotting."""

Series = tuple[str, list[float], list[float]]


def thin(xs: list[float], ys: list[float], limit: int = MAX_POINTS) -> tuple[list[float], list[float]]:
    n = len(xs)
    if n <= limit:
        return xs, ys
    stride = -(-n // limit)
    idx = list(range(0, n, stride))
    if idx[-1] != n - 1:
        idx.append(n - 1)
    return [xs[i] for i in idx], [ys[i] for i in idx]


def _finite(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def int_ticks(lo: float, hi: float, n: int = 5) -> list[int]:
    """At most about ``n`` integer ticks on a 1-2-5 spacing covering [lo, hi] (steps are
    whole numbers: no ``62.5``)."""
    lo_i, hi_i = math.floor(lo), math.ceil(hi)
    span = max(1, hi_i - lo_i)
    raw = span / max(1, n - 1)
    mag = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    step = max(1, int(step))
    start = math.ceil(lo_i / step) * step
    return list(range(int(start), hi_i + 1, step)) or [lo_i]


def nice_ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    """About ``n`` round values covering [lo, hi] (lo < hi)."""
    raw = (hi - lo) / max(1, n - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    out, v = [], start
    while v <= hi + step * 1e-9 and len(out) < 20:
        out.append(v)
        v += step
    return out


def log_ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    """Ticks for a log axis given in log10 units: the round values 1, 2, 5 × 10^k inside
    [10^lo, 10^hi], thinned to about ``n``; :func:`nice_ticks` when fewer than two fit."""
    out = [k + math.log10(m) for k in range(math.floor(lo) - 1, math.ceil(hi) + 1) for m in (1, 2, 5)]
    out = [t for t in out if lo <= t <= hi]
    if len(out) < 2:
        return nice_ticks(lo, hi, n)
    stride = -(-len(out) // n)
    return out[::stride]


def log_tick_label(t: float) -> str:
    """The label of a log-axis tick at log10 value ``t``."""
    if abs(t) >= 300:
        return f"1e{round(t)}"
    return tick_label(10.0 ** t)


def tick_label(v: float) -> str:
    """A short label: 3 significant figures, thousands separators, exponent when huge or tiny."""
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e6 or a < 1e-3:
        return f"{v:.2e}"
    if a >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def y_range(ys: list[float]) -> tuple[float, float]:
    """A range around ``ys`` that is never empty: equal values (or one point) get ±5 %
    (±1 around 0)."""
    lo, hi = min(ys), max(ys)
    if hi - lo <= abs(hi) * 1e-12:
        pad = abs(hi) * 0.05 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.05
    return lo - pad, hi + pad


_TITLE = Style(bold=True)
_DIM = Style(dim=True)


class CurvePlot(PlotextPlot):
    """One or more (label, xs, ys) series against the step. Redraws only when
    :meth:`set_series` is given a new ``key`` (e.g. a snapshot's version), at most 10 times
    a second."""

    def __init__(self, title: str, *, ylog: bool = False, xlabel: str = "step", short_title: str | None = None,
                 legend: bool = True, xtick_label: Callable[[float], str] | None = None, **kwargs):
        """``short_title``: shown instead of ``title`` when the panel is too narrow for it
        (plotext drops a title that does not fit). ``legend=False``: no legend inside the
        plot (the compare view has its own). ``xtick_label``: the x ticks' text (default:
        whole numbers with thousands separators)."""
        super().__init__(**kwargs)
        self.legend = legend
        self.xtick_label = xtick_label
        self.series_colors: list[object] | None = None  # one plotext colour per series (None: plotext's sequence)
        self.title = title
        self.short_title = short_title
        self.ylog = ylog
        self.xlabel = xlabel
        self._series: list[Series] = []
        self._key: object = ()
        self._last_draw = 0.0
        self._pending = False
        self._strips: list[Strip] | None = None
        self._strips_key: object = None
        self.error: str | None = None  # the last build error, shown in the panel
        self.empty_message = NO_DATA  # shown when no series has a point

    @property
    def series(self) -> list[Series]:
        return self._series

    def refresh(self, *args, **kwargs):
        self._strips = None  # new data, size or theme: build the figure again on the next paint
        return super().refresh(*args, **kwargs)

    def render_line(self, y: int) -> Strip:
        """Line API: the figure is built once per change, not once per line or per paint."""
        width, height = self.size
        key = (width, height, self.app.theme)
        if self._strips is None or self._strips_key != key:
            self._strips = self.build_strips(width, height)
            self._strips_key = key
        if 0 <= y < len(self._strips):
            return self._strips[y]
        return Strip.blank(width)

    def build_strips(self, width: int, height: int) -> list[Strip]:
        """The panel at ``width`` × ``height``: the figure, or a message when there is
        nothing to plot, the panel is too small, or plotext fails."""
        self.error = None
        if width <= 0 or height <= 0:
            return []
        if width < MIN_WIDTH or height < MIN_HEIGHT:
            return self._message(width, height, "terminal too small for plots")
        points = self._points()
        if not any(xs for _, xs, _ in points):  # nothing to plot: no need for plotext
            return self._message(width, height, self.empty_message)
        try:
            ansi = self._build_figure(points, width, height)
            return self._ansi_strips(ansi, width, height)
        except Exception as exc:  # plotext has many edge cases: a message, never a crash
            self.error = f"{type(exc).__name__}: {exc}"
            return self._message(width, height, f"cannot draw this plot ({self.error})")

    def _points(self) -> list[Series]:
        """Each series thinned to what the canvas can show (first, so a 100,000-step run costs
        what a 600-point one does), then with non-finite values (and, on a log axis, values
        ≤ 0) dropped; on a log axis the values are log10'd."""
        out = []
        limit = max(100, min(MAX_POINTS, 2 * max(1, self.size.width)))
        for label, xs, ys in self._series:
            n = min(len(xs), len(ys))
            xs, ys = thin(xs[:n], ys[:n], limit)
            pts = [(float(x), float(y)) for x, y in zip(xs, ys) if _finite(x) and _finite(y) and (not self.ylog or y > 0)]
            if self.ylog:
                pts = [(x, math.log10(y)) for x, y in pts]
            else:
                pts = [(x, max(-MAX_ABS, min(MAX_ABS, y))) for x, y in pts]
            out.append((label, [p[0] for p in pts], [p[1] for p in pts]))
        return out

    def _build_figure(self, points: list[Series], width: int, height: int) -> str:
        """A fresh plotext figure for ``points`` (already log10'd on a log axis), built to ANSI."""
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.plotsize(width, height)
        plt._set_size(width, height)
        plt.theme(self._get_plotext_theme_name(self.app.theme))
        plt.title(self.title if len(self.title) + 4 <= width or not self.short_title else self.short_title)
        plt.xlabel(self.xlabel)
        all_x = [x for _, xs, _ in points for x in xs]
        all_y = [y for _, _, ys in points for y in ys]
        for i, (label, xs, ys) in enumerate(points):
            if not xs:
                continue
            style = {"label": label if self.legend else None, "marker": "hd"}
            if self.series_colors is not None and i < len(self.series_colors):
                style["color"] = self.series_colors[i]
            if len(xs) == 1:
                plt.scatter(xs, ys, **style)
            else:
                plt.plot(xs, ys, **style)
        x_lo, x_hi = min(all_x), max(all_x)
        if x_hi - x_lo < 1:  # one step: a window of one step after it (before it when > 0)
            x_lo, x_hi = (x_lo - 1, x_hi + 1) if x_lo >= 1 else (x_lo, x_lo + 1)
        xt = int_ticks(x_lo, x_hi, max(2, min(6, width // 10)))
        plt.xlim(min(x_lo, xt[0]), max(x_hi, xt[-1]))
        plt.xticks(xt, [self.xtick_label(t) if self.xtick_label else f"{t:,}" for t in xt])
        y_lo, y_hi = y_range(all_y)
        plt.ylim(y_lo, y_hi)
        n_y = max(2, min(5, height // 4))
        yt = log_ticks(y_lo, y_hi, n_y) if self.ylog else nice_ticks(y_lo, y_hi, n_y)
        labels = [log_tick_label(t) if self.ylog else tick_label(t) for t in yt]
        plt.yticks(yt, labels)
        return plt.build()

    def _ansi_strips(self, ansi: str, width: int, height: int) -> list[Strip]:
        """Plotext's ANSI text as one strip per line, decoded by Rich (as textual-plotext does)."""
        console = self.app.console
        lines = Text.from_ansi(ansi).split("\n", allow_blank=True)[:height]
        return [Strip(list(line.render(console)), line.cell_len).adjust_cell_length(width) for line in lines]

    def _message(self, width: int, height: int, message: str) -> list[Strip]:
        """The title and a message, without plotext."""
        lines = [Strip.blank(width) for _ in range(height)]
        rows = [(0, self.title, _TITLE)]
        words, text = message.split(), ""
        body: list[str] = []
        for w in words:  # wrap the message to the width
            if text and len(text) + 1 + len(w) > width:
                body.append(text)
                text = w
            else:
                text = f"{text} {w}" if text else w
        body.append(text)
        start = max(1, height // 2 - len(body) // 2)
        rows += [(start + i, line, _DIM) for i, line in enumerate(body)]
        for row, text, style in rows:
            if 0 <= row < height:
                lines[row] = Strip([Segment(text.center(width)[:width], style)], width)
        return lines

    def on_resize(self) -> None:
        self.refresh()  # thinning and ticks depend on the size

    def set_series(self, series: list[Series], key: object, colors: list[object] | None = None,
                   empty_message: str = NO_DATA) -> None:
        """Plot ``series`` (label, xs, ys) unless ``key`` is the one already shown; ``colors``:
        one plotext colour (name, 0-255 or an RGB tuple) per series; ``empty_message``: what
        the panel says when no series has a point."""
        if key == self._key:
            return
        self._key = key
        self._series = series
        self.empty_message = empty_message
        self.series_colors = colors
        if self._pending:
            return
        wait = REDRAW_MIN_INTERVAL_S - (time.monotonic() - self._last_draw)
        if wait <= 0:
            self._draw()
        else:
            self._pending = True
            self.set_timer(wait, self._draw)

    def _draw(self) -> None:
        self._pending = False
        self._last_draw = time.monotonic()
        self.refresh()
