"""Small display widgets of the run panels: curves (textual-plotext) and text panels."""

from __future__ import annotations

import time

from textual_plotext import PlotextPlot

REDRAW_MIN_INTERVAL_S = 0.1  # at most ~10 redraws a second per plot


class CurvePlot(PlotextPlot):
    """One or more (x, y) series; redraws only when given new data, at most 10 times a second."""

    def __init__(self, title: str, *, ylog: bool = False, xlabel: str = "step", **kwargs):
        super().__init__(**kwargs)
        self.title = title
        self.ylog = ylog
        self.xlabel = xlabel
        self._series: list[tuple[str, list[float], list[float]]] = []
        self._key: object = None
        self._last_draw = 0.0
        self._pending = False

    def set_series(self, series: list[tuple[str, list[float], list[float]]], key: object) -> None:
        """Replace the data; ``key`` identifies it (e.g. a run state's version) so equal data
        does not redraw."""
        if key == self._key:
            return
        self._key = key
        self._series = series
        now = time.monotonic()
        if now - self._last_draw >= REDRAW_MIN_INTERVAL_S:
            self._draw()
        elif not self._pending:
            self._pending = True
            self.set_timer(REDRAW_MIN_INTERVAL_S, self._draw)

    def _draw(self) -> None:
        self._pending = False
        self._last_draw = time.monotonic()
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(self.title)
        plt.xlabel(self.xlabel)
        any_data = False
        for label, xs, ys in self._series:
            pts = [(x, y) for x, y in zip(xs, ys) if y is not None and (not self.ylog or y > 0)]
            if not pts:
                continue
            any_data = True
            px, py = zip(*pts)
            if len(px) == 1:
                plt.scatter(list(px), list(py), label=label)
            else:
                plt.plot(list(px), list(py), label=label)
        if self.ylog and any_data:
            plt.yscale("log")
        self.refresh()
