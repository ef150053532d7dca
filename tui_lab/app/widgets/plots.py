"""A curve panel drawn with textual-plotext."""

from __future__ import annotations

import re
import time

from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual_plotext import PlotextPlot

REDRAW_MIN_INTERVAL_S = 0.1
"""At most ~10 redraws a second per plot, however fast data arrives."""
MAX_POINTS = 600
"""Longer series are thinned (evenly, keeping the last point) before plotting."""

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


_TITLE = Style(bold=True)
_DIM = Style(dim=True)
_SGR = re.compile(r"\x1b\[([0-9;]*)m")


def _color(params: list[str], i: int) -> tuple[Color | None, int]:
    """The colour of an extended SGR parameter list at ``i`` (``5;N`` or ``2;R;G;B``)."""
    try:
        if params[i] == "5":
            return Color.from_ansi(int(params[i + 1])), i + 2
        if params[i] == "2":
            return Color.from_rgb(int(params[i + 1]), int(params[i + 2]), int(params[i + 3])), i + 4
    except (IndexError, ValueError):
        pass
    return None, len(params)


class AnsiLines:
    """Plotext's ANSI output as Textual strips. Rich's general decoder is the slowest part of
    drawing a plot; plotext only emits colour and bold codes, which this parses directly,
    with one cached Style per state."""

    def __init__(self) -> None:
        self._styles: dict[tuple, Style] = {}

    def _style(self, fg: Color | None, bg: Color | None, bold: bool) -> Style:
        key = (fg, bg, bold)
        style = self._styles.get(key)
        if style is None:
            style = self._styles[key] = Style(color=fg, bgcolor=bg, bold=bold or None)
        return style

    def strips(self, text: str, width: int) -> list[Strip]:
        out = []
        for line in text.split("\n"):
            fg = bg = None
            bold = False
            segments = []
            pos = 0
            for m in _SGR.finditer(line):
                if m.start() > pos:
                    segments.append(Segment(line[pos:m.start()], self._style(fg, bg, bold)))
                pos = m.end()
                params = m.group(1).split(";") if m.group(1) else ["0"]
                i = 0
                while i < len(params):
                    code = params[i]
                    if code in ("0", ""):
                        fg = bg = None
                        bold = False
                        i += 1
                    elif code == "1":
                        bold = True
                        i += 1
                    elif code == "22":
                        bold = False
                        i += 1
                    elif code in ("38", "48"):
                        color, i = _color(params, i + 1)
                        if code == "38":
                            fg = color
                        else:
                            bg = color
                    elif code == "39":
                        fg = None
                        i += 1
                    elif code == "49":
                        bg = None
                        i += 1
                    else:
                        i += 1
            if pos < len(line):
                segments.append(Segment(line[pos:], self._style(fg, bg, bold)))
            out.append(Strip(segments).adjust_cell_length(width))
        return out


class CurvePlot(PlotextPlot):
    """One or more (label, xs, ys) series against the step. Redraws only when
    :meth:`set_series` is given a new ``key`` (e.g. a snapshot's version), at most 10 times
    a second."""

    def __init__(self, title: str, *, ylog: bool = False, xlabel: str = "step", **kwargs):
        super().__init__(**kwargs)
        self.title = title
        self.ylog = ylog
        self.xlabel = xlabel
        self._series: list[Series] = []
        self._key: object = ()
        self._last_draw = 0.0
        self._pending = False
        self.draws = 0  # how many times the figure was rebuilt (tests check the throttle)
        self._ansi = AnsiLines()
        self._strips: list[Strip] | None = None
        self._strips_key: object = None

    @property
    def series(self) -> list[Series]:
        return self._series

    def on_mount(self) -> None:
        super().on_mount()
        self._draw()

    def refresh(self, *args, **kwargs):
        self._strips = None  # new data, size or theme: build the figure again on the next paint
        return super().refresh(*args, **kwargs)

    def render_line(self, y: int) -> Strip:
        """Line API: the figure is built once per change, not once per line or per paint."""
        width, height = self.size
        key = (width, height, self.app.theme)
        if self._strips is None or self._strips_key != key:
            if not any(xs for _, xs, _ in self._series):  # nothing to plot: no need for plotext
                self._strips = self._placeholder(width, height)
                self._strips_key = key
                return self._strips[y] if 0 <= y < len(self._strips) else Strip.blank(width)
            plt = self.plt
            plt.plotsize(width, height)
            plt._set_size(width, height)
            plt.theme(self._get_plotext_theme_name(self.app.theme))
            self._strips = self._ansi.strips(plt.build(), width) if width and height else []
            self._strips_key = key
        if 0 <= y < len(self._strips):
            return self._strips[y]
        return Strip.blank(width)

    def _placeholder(self, width: int, height: int) -> list[Strip]:
        """The title and "no data yet", without plotext (the first frame has no data)."""
        lines = [Strip.blank(width) for _ in range(height)]
        for row, text, style in ((0, self.title, _TITLE), (height // 2, "no data yet", _DIM)):
            if 0 <= row < height:
                lines[row] = Strip([Segment(text.center(width)[:width], style)], width)
        return lines

    def on_resize(self) -> None:
        if self._series:
            self._draw()  # thinning depends on the width

    def set_series(self, series: list[Series], key: object) -> None:
        if key == self._key:
            return
        self._key = key
        self._series = series
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
        self.draws += 1
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(self.title)
        plt.xlabel(self.xlabel)
        any_data = False
        for label, xs, ys in self._series:
            pts = [(x, y) for x, y in zip(xs, ys) if not self.ylog or y > 0]
            if not pts:
                continue
            any_data = True
            # more points than the canvas has dots would only cost time
            px, py = thin([p[0] for p in pts], [p[1] for p in pts], max(100, min(MAX_POINTS, 2 * self.size.width)))
            if len(px) == 1:
                plt.scatter(px, py, label=label, marker="hd")
            else:
                plt.plot(px, py, label=label, marker="hd")
        if self.ylog and any_data:
            plt.yscale("log")
        self.refresh()
