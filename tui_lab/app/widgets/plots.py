"""A curve panel drawn with textual-plotext's ``Plot``.

textual-plotext (and plotext, ~0.1 s to import) is imported when a panel first has data to
draw, not when the app starts: the first frame shows the panels' titles and "no data yet"
without it.
"""

from __future__ import annotations

import time

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.color import Color
from textual.strip import Strip
from textual.widget import Widget

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
def warm_up() -> None:
    """Import textual-plotext now (the app calls it in a thread after its first frame, so the
    first curve with data does not wait for the import)."""
    import textual_plotext.plot  # noqa: F401


class CurvePlot(Widget):
    """One or more (label, xs, ys) series against the step. Redraws only when
    :meth:`set_series` is given a new ``key`` (e.g. a snapshot's version), at most 10 times
    a second. Colours follow the app's theme as textual-plotext's ``PlotextPlot`` does
    (its "auto" theme: the theme's surface and foreground)."""

    DEFAULT_CSS = """
    CurvePlot { width: 1fr; height: 1fr; }
    """

    def __init__(self, title: str, *, ylog: bool = False, xlabel: str = "step", **kwargs):
        super().__init__(**kwargs)
        self._plot = None  # textual_plotext.plot.Plot, made on first use
        self.title = title
        self.ylog = ylog
        self.xlabel = xlabel
        self._series: list[Series] = []
        self._key: object = ()
        self._last_draw = 0.0
        self._pending = False
        self.draws = 0  # how many times the figure was rebuilt (tests check the throttle)
        self._strips: list[Strip] | None = None
        self._strips_key: object = None

    @property
    def series(self) -> list[Series]:
        return self._series

    @property
    def plt(self):
        """The plotext figure (``textual_plotext.plot.Plot``), imported and made on first use."""
        if self._plot is None:
            from textual_plotext.plot import Plot

            self._plot = Plot()
        return self._plot

    def _plotext_theme(self) -> str:
        """The plotext theme for the app's theme, registered as textual-plotext's "auto" theme."""
        from plotext._dict import themes
        from textual_plotext.plot import _rgbify_theme, _sequence

        name = f"textual-auto-{self.app.theme}"
        if name not in themes:
            variables = self.app.theme_variables
            surface = Color.parse(variables.get("surface")).rgb
            themes[name] = _rgbify_theme(surface, surface, Color.parse(variables.get("foreground")).rgb,
                                         "default", _sequence)
        return name

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda theme: self.refresh())
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
            plt.theme(self._plotext_theme())
            self._strips = self._ansi_strips(plt.build(), width) if width and height else []
            self._strips_key = key
        if 0 <= y < len(self._strips):
            return self._strips[y]
        return Strip.blank(width)

    def _ansi_strips(self, ansi: str, width: int) -> list[Strip]:
        """Plotext's ANSI text as one strip per line, decoded by Rich (as textual-plotext does)."""
        console = self.app.console
        return [Strip(list(line.render(console)), line.cell_len).adjust_cell_length(width)
                for line in Text.from_ansi(ansi).split("\n", allow_blank=True)]

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
        if not any(xs for _, xs, _ in self._series):  # the placeholder needs no figure (nor plotext)
            self.refresh()
            return
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
