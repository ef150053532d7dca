"""The main screen: experiments, their runs, and the live panels of the selected run."""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label, ProgressBar, Static, TabbedContent, TabPane

from ...runs.store import RunDir, list_runs
from ..watch import RunState
from ..widgets import CurvePlot

POLL_S = 0.25
STATUS_STYLE = {"running": "bold green", "finished": "cyan", "stopped": "yellow", "failed": "bold red",
                "diverged": "bold magenta", "interrupted": "red", "never run": "dim", "starting": "green"}


def fmt_int(n: Any) -> str:
    return f"{n:,}" if isinstance(n, int) else "…"


def fmt_ppl(v: Any) -> str:
    return f"{v:,.2f}" if isinstance(v, (int, float)) and math.isfinite(v) else "-"


def fmt_duration(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class MainScreen(Screen):
    """Experiments on the left (with their runs), the selected run's live panels on the right."""

    BINDINGS = [
        Binding("t", "app.train", "Train"),
        Binding("s", "app.stop", "Stop"),
        Binding("R", "app.resume", "Resume"),
        Binding("a", "app.enqueue", "Queue"),
        Binding("c", "app.chat", "Chat"),
        Binding("r", "app.results", "Results"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.state: RunState | None = None
        self.counts: dict[str, dict[str, Any]] = {}  # from `tui-lab list --json`, filled in the background
        self._drawn_version = -1

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            with Vertical(id="left"):
                yield DataTable(id="experiments", cursor_type="row", zebra_stripes=True)
                yield Label("Runs", id="runs-title")
                yield DataTable(id="runs", cursor_type="row")
            with Vertical(id="right"):
                yield Static(id="stats")
                yield ProgressBar(id="progress", show_eta=False)
                with TabbedContent(id="tabs"):
                    with TabPane("Curves", id="tab-curves"):
                        with Horizontal():
                            yield CurvePlot("loss (nats/token)", id="loss-plot")
                            yield CurvePlot("val perplexity", ylog=True, id="ppl-plot")
                    with TabPane("LR · tokens/s", id="tab-lr"):
                        with Horizontal():
                            yield CurvePlot("learning rate", id="lr-plot")
                            yield CurvePlot("tokens/s", id="tps-plot")
                    with TabPane("Log", id="tab-log"):
                        with VerticalScroll():
                            yield Static(id="log")
                    with TabPane("Samples", id="tab-samples"):
                        with VerticalScroll():
                            yield Static(id="samples")
                    with TabPane("Experiment", id="tab-detail"):
                        with VerticalScroll():
                            yield Static(id="detail")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#experiments", DataTable)
        table.add_columns("experiment", "status", "params", "best ppl")
        runs = self.query_one("#runs", DataTable)
        runs.add_columns("run", "status", "step", "best ppl")
        self.refresh_experiments()
        self.set_interval(2.0, self.refresh_experiments)
        self.load_counts()
        self.watch_selected()
        table.focus()

    # ------------------------------------------------------------------ data
    @property
    def cfg(self):
        return self.app.cfg

    def latest_run(self, name: str):
        runs = list_runs(self.app.runs_dir, name)
        return runs[-1] if runs else None

    def highlighted_experiment(self) -> str | None:
        table = self.query_one("#experiments", DataTable)
        if not table.row_count:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def refresh_experiments(self) -> None:
        """Status, parameters and best perplexity of every experiment (from run.json files)."""
        table = self.query_one("#experiments", DataTable)
        for name, exp in self.cfg.experiments.items():
            latest = self.latest_run(name)
            status = latest.status if latest else "never run"
            info = latest.info if latest else {}
            n_params = info.get("num_params") or self.counts.get(name, {}).get("num_params")
            best = min((r.info.get("best_val_ppl") or math.inf for r in list_runs(self.app.runs_dir, name)),
                       default=math.inf)
            row = (name, f"[{STATUS_STYLE.get(status, 'default')}]{status}[/]", fmt_int(n_params), fmt_ppl(best))
            if name in table.rows:
                for col, value in zip(table.columns, row):
                    table.update_cell(name, col, value, update_width=True)
            else:
                table.add_row(*row, key=name)
        self.refresh_runs()

    def refresh_runs(self) -> None:
        name = self.highlighted_experiment()
        runs_table = self.query_one("#runs", DataTable)
        summaries = list_runs(self.app.runs_dir, name) if name else []
        keys = [str(s.run.path) for s in summaries]
        if keys != [str(k.value) for k in runs_table.rows]:
            selected = self.state.run.path if self.state else None
            runs_table.clear()
            for s in reversed(summaries):
                runs_table.add_row(s.run.run_id, s.status, str(s.info.get("step", "-")),
                                   fmt_ppl(s.info.get("best_val_ppl")), key=str(s.run.path))
            if summaries and (selected is None or str(selected) not in keys):
                self.select_run(summaries[-1].run)
            elif not summaries:
                self.select_run(None)
        else:
            for s in summaries:
                key = str(s.run.path)
                runs_table.update_cell(key, runs_table.ordered_columns[1].key, s.status, update_width=True)
                runs_table.update_cell(key, runs_table.ordered_columns[2].key, str(s.info.get("step", "-")), update_width=True)
                runs_table.update_cell(key, runs_table.ordered_columns[3].key, fmt_ppl(s.info.get("best_val_ppl")), update_width=True)
        self.show_detail(name)

    def select_run(self, run: RunDir | None) -> None:
        if run is None:
            self.state = None
        elif self.state is None or self.state.run.path != run.path:
            self.state = RunState(run)
            self.state.poll()
        self._drawn_version = -1
        self.draw_run()

    @work(exclusive=True, group="counts")
    async def load_counts(self) -> None:
        """Exact parameter counts and cached token counts, from `tui-lab list --json` in a
        subprocess: the app itself never imports torch."""
        if not self.app.counts_enabled:
            return
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tui_lab", "list", "--json", "--config", str(self.cfg.path),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        out, _ = await proc.communicate()
        try:
            self.counts = {row["name"]: row for row in json.loads(out or b"[]")}
        except ValueError:
            return
        self.refresh_experiments()

    @work(thread=True, exclusive=True, group="watch")
    def watch_selected(self) -> None:
        """Tail the selected run's files a few times a second; redraw only on change."""
        worker_state = None
        while not self.app._exit:
            state = self.state
            if state is not None and (state.poll() or state is not worker_state):
                worker_state = state
                self.app.call_from_thread(self.draw_run)
            time.sleep(POLL_S)

    # ------------------------------------------------------------------ drawing
    def show_detail(self, name: str | None) -> None:
        detail = self.query_one("#detail", Static)
        if name is None or name not in self.cfg.experiments:
            detail.update("")
            return
        exp = self.cfg.experiments[name]
        m, d, t = exp.model, exp.data, exp.train
        counts = self.counts.get(name, {})
        n_params = counts.get("num_params")
        tokens = counts.get("train_tokens")
        source = d.path or (f"{d.dataset} / {d.config}" if d.config else d.dataset)
        lines = [
            f"[b]{name}[/b] — {exp.description}",
            "",
            f"model     {m.kind}: d_model {m.d_model}, num_heads {m.num_heads}, d_ff {m.d_ff}, "
            f"num_layers {m.num_layers}, max_seq_len {m.max_seq_len}, vocab {m.vocab_size:,}, dropout {m.dropout}",
            f"params    {fmt_int(n_params)}",
            f"data      {source} · tokenizer {d.tokenizer}",
            f"train     batch {t.batch_size} × seq {exp.seq_len} · lr {t.lr:g} ({t.lr_schedule}) · "
            f"wd {t.weight_decay} · clip {t.grad_clip} · "
            + (f"{t.epochs} epochs" if t.epochs else "") + (f" · max {t.max_steps} steps" if t.max_steps else ""),
        ]
        if tokens:
            ratio = tokens / n_params if n_params else None
            lines += [f"tokens    {tokens:,} train tokens per epoch",
                      f"Chinchilla D/N = {ratio:.2f} (optimal ≈ 20) · compute-optimal params for this data "
                      f"≈ {tokens // 20:,}" if ratio else ""]
        else:
            lines.append("tokens    not tokenized yet (train once, or `tui-lab check --sanity`)")
        detail.update("\n".join(lines))

    def draw_run(self) -> None:
        stats = self.query_one("#stats", Static)
        bar = self.query_one("#progress", ProgressBar)
        st = self.state
        if st is None:
            stats.update("[dim]no run selected — highlight an experiment and press [b]t[/b] to train it[/]")
            bar.update(total=None, progress=0)
            for plot_id in ("#loss-plot", "#ppl-plot", "#lr-plot", "#tps-plot"):
                self.query_one(plot_id, CurvePlot).set_series([], None)
            self.query_one("#log", Static).update("")
            self.query_one("#samples", Static).update("")
            return
        if st.version == self._drawn_version:
            return
        self._drawn_version = st.version
        info = st.info
        status = info.get("status", "starting")
        step, total = st.progress()
        last_train = st.last("train") or {}
        last_eval = st.last("eval") or {}
        gpu = self.app.gpu_line(info) if status == "running" else ""
        parts = [
            f"[b]{st.run.experiment}/{st.run.run_id}[/b] · [{STATUS_STYLE.get(status, 'default')}]{status}[/] · "
            f"step {step:,}/{fmt_int(total)} · epoch {last_train.get('epoch', '-')}",
            f"loss {last_train.get('train_loss', float('nan')):.4f} · val loss {last_eval.get('val_loss', float('nan')):.4f}"
            f" · val ppl {fmt_ppl(last_eval.get('val_ppl'))} · best {fmt_ppl(info.get('best_val_ppl'))}",
            f"{last_train.get('tokens_per_s', 0):,.0f} tokens/s · elapsed {fmt_duration(st.elapsed_s())} · "
            f"ETA {fmt_duration(st.eta_s())} · {info.get('device', '')} {gpu}",
        ]
        text = Text.from_markup("\n".join(parts))
        if info.get("message"):
            text.append("\n" + str(info["message"]), style="dim")
        stats.update(text)
        bar.update(total=total or None, progress=step)
        key = (str(st.run.path), st.version)
        self.query_one("#loss-plot", CurvePlot).set_series(
            [("train", *st.series("train", "train_loss")), ("val", *st.series("eval", "val_loss"))], key)
        self.query_one("#ppl-plot", CurvePlot).set_series([("val ppl", *st.series("eval", "val_ppl"))], key)
        self.query_one("#lr-plot", CurvePlot).set_series([("lr", *st.series("train", "lr"))], key)
        self.query_one("#tps-plot", CurvePlot).set_series([("tokens/s", *st.series("train", "tokens_per_s"))], key)
        self.query_one("#log", Static).update(Text(st.log_tail or "(no log yet)"))  # plain text, never markup
        samples = Text()
        for s in st.samples():
            samples.append(f"step {s['step']}  ", style="dim")
            samples.append(str(s["prompt"]), style="bold")
            samples.append(str(s["text"]) + "\n\n")
        self.query_one("#samples", Static).update(
            samples or Text("(no samples yet: the trainer writes them at evaluations when train.sample_every > 0)"))

    # ------------------------------------------------------------------ events
    @on(DataTable.RowHighlighted, "#experiments")
    def _experiment_highlighted(self, event: DataTable.RowHighlighted) -> None:
        name = str(event.row_key.value)
        latest = self.latest_run(name)
        self.select_run(latest.run if latest else None)
        self.refresh_runs()

    @on(DataTable.RowHighlighted, "#runs")
    def _run_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value:
            self.select_run(RunDir(Path(str(event.row_key.value))))
