"""``tui-lab report``: one Markdown (or HTML) report of the runs, with a report card against
the seed logs.

Sections, in order:

1. **Report card against the seed logs** — for every experiment with an
   ``[experiments.NAME.reference]`` table (exp1–exp7): the seed log's validation perplexity,
   tokens/s, parameter count and epochs beside tui-lab's, with Δ = tui-lab − seed log (and
   Δ % of the seed's figure), and the data protocol of each side (``data.join`` and which
   text: ``raw`` WikiText or the ``<unk>`` version); where the protocols or validation token
   counts differ, the note beside the Δ says so. A reference with ``valid = false`` (exp7)
   gets no Δ: its note says why the figure cannot be compared. tui-lab's figures come from
   the experiment's **chosen run**: the one with the lowest best validation perplexity among
   its runs on the seed's protocol (join and text), else among all its runs.
2. **Runs** — every run (the runs table, abridged) with its data protocol.
3. **Seed groups** — runs that differ only in ``train.seed``, mean ± std (n)
   (:mod:`.groups`), when some group has two runs or more.
4. **Progression** — per experiment, the chosen run's validation perplexity at each
   evaluation, and the overlay of all the experiment's runs (PNG beside the report file).
5. **Curves** — the chosen runs of all experiments overlaid (PNG).

The report is built as a list of :class:`Block` s and rendered to Markdown or HTML from
the same blocks. Deterministic: the same run folders and experiments file give the same
text (no date in it). No torch here; matplotlib only for the plots (without it the report
says the plots were skipped).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.schema import Experiment, Reference
from ..errors import TuiLabError
from ..runs.store import RunDir
from .formats import format_cell, to_markdown, write_output
from .groups import group_table, seed_groups
from .tables import RUN_COLUMNS, Column, Table, all_runs, progression_table, run_record

REPORT_FORMATS = ("md", "html")


@dataclass
class Block:
    """One piece of the report: ``kind`` is ``h1``, ``h2``, ``h3``, ``p`` (text with
    ``code`` spans in backticks), ``list`` (``items``), ``table`` or ``image`` (``src``, a
    file name relative to the report, and ``text`` its caption)."""

    kind: str
    text: str = ""
    items: list[str] = field(default_factory=list)
    table: Table | None = None
    src: str = ""


@dataclass
class Plot:
    """An overlay the report links to: the runs, the file name (beside the report), a title."""

    runs: list[RunDir]
    name: str
    title: str


@dataclass
class Report:
    """The report's blocks and the plots they link to."""

    blocks: list[Block]
    plots: list[Plot]


def data_protocol(config: dict[str, Any]) -> tuple[str, str]:
    """``(join, text)`` of a run's saved config: ``data.join`` (``file`` when absent: runs saved
    before the key existed used it) and which text: ``raw`` (``wikitext-*-raw-v1``, a
    ``wiki.*.raw`` folder), ``unk`` (the ``<unk>`` version ``wikitext-*-v1``; a local folder
    whose validation file holds ``<unk>``), else the dataset's name."""
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    join = str(data.get("join") or "file")
    if data.get("path"):
        folder = Path(str(data["path"]))
        for name in ("valid.txt", "validation.txt", "wiki.valid.raw", "wiki.valid.tokens"):
            try:
                with open(folder / name, encoding="utf-8", errors="replace") as fh:
                    return join, "unk" if "<unk>" in fh.read(1 << 20) else "raw"
            except OSError:
                continue
        low = folder.name.lower()
        return join, "raw" if "raw" in low else "unk" if "tokenized" in low else folder.name or str(folder)
    name = str(data.get("config") or data.get("dataset") or "?")
    if name.startswith("wikitext-"):
        return join, "raw" if "-raw-" in name else "unk"
    return join, name


def _protocol_text(join: str | None, text: str | None) -> str:
    return f"{join or '?'}, {text or '?'}"


def chosen_run(runs: list[RunDir], records: dict[Path, dict[str, Any]]) -> RunDir | None:
    """The run with the lowest best validation perplexity (the later one of equal ones);
    None when no run has evaluated yet."""
    best = None
    for run in runs:
        ppl = records[run.path].get("best_val_ppl")
        if ppl is not None and (best is None or ppl <= records[best.path]["best_val_ppl"]):
            best = run
    return best


CARD_COLUMNS = [
    Column("experiment", "Experiment"),
    Column("seed_val_ppl", "Seed log val ppl", "float", 2),
    Column("val_ppl", "tui-lab val ppl", "float", 2),
    Column("delta_val_ppl", "Δ", "float", 2),
    Column("delta_val_ppl_pct", "Δ %", "float", 1, "%"),
    Column("note", "Compared"),
    Column("seed_protocol", "Seed data"),
    Column("protocol", "tui-lab data"),
    Column("seed_tokens_per_s", "Seed tokens/s", "float", 0, "tokens/s"),
    Column("tokens_per_s", "tui-lab tokens/s", "float", 0, "tokens/s"),
    Column("seed_num_params", "Seed params", "int", unit="parameters"),
    Column("num_params", "tui-lab params", "int", unit="parameters"),
    Column("seed_epochs", "Seed epochs", "int", unit="epochs"),
    Column("epochs", "tui-lab epochs", "float", 2, unit="epochs"),
    Column("run", "tui-lab run"),
]
"""The report card's columns (``seed_*``: the seed log's figure; Δ = tui-lab − seed log)."""


def _card_row(name: str, ref: Reference, run: RunDir | None, rec: dict[str, Any] | None) -> tuple[dict[str, Any], list[str]]:
    """One report-card row and its notes (the source, invalid figures, protocol differences)."""
    params = f"{ref.num_params:,}" if ref.num_params else "-"
    notes = [f"{name}: source {ref.source}" + (f"; seed params {params} are rounded in the log" if ref.num_params_rounded else "")]
    if ref.tokens_per_s is not None and ref.tokens_per_s_basis:
        notes.append(f"{name}: seed tokens/s = {ref.tokens_per_s_basis}")
    row: dict[str, Any] = {"experiment": name, "seed_val_ppl": ref.val_ppl, "seed_tokens_per_s": ref.tokens_per_s,
                           "seed_num_params": ref.num_params, "seed_epochs": ref.epochs,
                           "seed_protocol": _protocol_text(ref.join, ref.text) if ref.join or ref.text else "not stated"}
    if run is None or rec is None:
        row.update(note="no tui-lab run yet", run="-")
        return row, notes
    config = run.read_config() or {}
    join, text = data_protocol(config)
    info = run.read_run()
    row.update(val_ppl=rec.get("best_val_ppl"), tokens_per_s=rec.get("tokens_per_s"),
               num_params=rec.get("num_params"), epochs=rec.get("epochs"), protocol=_protocol_text(join, text),
               run=f"{run.experiment}/{run.run_id}")
    if not ref.valid:
        row["note"] = "seed figure invalid: no Δ"
        notes.append(f"{name}: the seed log's figures are invalid: {ref.invalid_reason}. tui-lab's figure is "
                     "from a causal model evaluated on held-out text.")
        return row, notes
    ppl = rec.get("best_val_ppl")
    if ppl is not None and ref.val_ppl is not None:
        row["delta_val_ppl"] = ppl - ref.val_ppl
        row["delta_val_ppl_pct"] = (ppl - ref.val_ppl) / ref.val_ppl * 100
    differ = []
    if ref.join and join != ref.join:
        differ.append(f"join {join} vs seed {ref.join}")
    if ref.text and text != ref.text:
        differ.append(f"text {text} vs seed {ref.text}")
    val_tokens = info.get("val_tokens")
    if ref.val_tokens and isinstance(val_tokens, int) and val_tokens != ref.val_tokens:
        differ.append(f"val tokens {val_tokens:,} vs seed {ref.val_tokens:,}")
    row["note"] = "different protocol: " + "; ".join(differ) if differ else "same protocol"
    return row, notes


def report_card(experiments: dict[str, Experiment], by_experiment: dict[str, list[RunDir]],
                records: dict[Path, dict[str, Any]]) -> tuple[Table, list[str]]:
    """The report card (:data:`CARD_COLUMNS`) of every experiment with a ``reference`` table,
    in the file's order, and its notes."""
    rows, notes = [], []
    for name, exp in experiments.items():
        if exp.reference is None:
            continue
        runs = by_experiment.get(name, [])
        ref = exp.reference
        alike = [r for r in runs if (ref.join is None or data_protocol(r.read_config() or {})[0] == ref.join)
                 and (ref.text is None or data_protocol(r.read_config() or {})[1] == ref.text)]
        run = chosen_run(alike, records) or chosen_run(runs, records)
        row, row_notes = _card_row(name, exp.reference, run, records.get(run.path) if run else None)
        rows.append(row)
        notes += row_notes
    return Table("Report card against the seed logs", list(CARD_COLUMNS), rows), notes


REPORT_RUN_KEYS = ["experiment", "run_id", "dataset", "num_params", "steps", "tokens_seen", "best_val_ppl",
                   "best_val_word_ppl", "tokens_per_s", "wall_time_s", "device", "status"]
"""The runs table's columns the report shows (the data protocol is added after the dataset)."""


def _runs_table(runs: list[RunDir], records: dict[Path, dict[str, Any]]) -> Table:
    known = {c.key: c for c in RUN_COLUMNS}
    cols = [known[k] for k in REPORT_RUN_KEYS]
    cols.insert(3, Column("protocol", "Data (join, text)"))
    rows = []
    for run in runs:
        join, text = data_protocol(run.read_config() or {})
        rows.append({**records[run.path], "protocol": _protocol_text(join, text)})
    return Table("Runs", cols, rows)


def build_report(runs_dir: Path | str, experiments: dict[str, Experiment] | None = None, stem: str = "report",
                 price_per_gpu_hour: float = 0.0) -> Report:
    """The report of every run under ``runs_dir``; ``experiments`` (from the experiments file)
    gives the report card's references and the experiments' order; plot files are named
    ``<stem>-<experiment>.png`` and ``<stem>-experiments.png``."""
    experiments = experiments or {}
    runs = all_runs(runs_dir)
    records = {r.path: run_record(r, price_per_gpu_hour) for r in runs}
    by_experiment: dict[str, list[RunDir]] = {}
    for r in runs:
        by_experiment.setdefault(r.experiment, []).append(r)
    order = [n for n in experiments if n in by_experiment] + sorted(n for n in by_experiment if n not in experiments)
    blocks = [Block("h1", "tui-lab report"),
              Block("p", f"{len(runs)} run{'s' if len(runs) != 1 else ''} of {len(order)} experiment"
                         f"{'s' if len(order) != 1 else ''}. Perplexity is exp(mean validation loss per token) in "
                         "each run's own tokens; tokens/s is tokens seen ÷ the run's training clock (elapsed_s).")]
    plots: list[Plot] = []
    if any(e.reference is not None for e in experiments.values()):
        card, notes = report_card(experiments, by_experiment, records)
        blocks += [Block("h2", "Report card against the seed logs"),
                   Block("p", "Seed log: the figure the experiment's seed log reports (`[experiments.NAME.reference]` "
                              "in the experiments file). tui-lab: the experiment's run with the lowest best validation "
                              "perplexity, on the seed's data protocol where it has one. Δ = tui-lab − seed log (negative: tui-lab's perplexity is lower); Δ % is "
                              "relative to the seed log's figure. Data: `data.join` (`strip-lines` is the seed scripts' "
                              "protocol, `file` whole-file tokenization) and the text (`raw` WikiText or the `<unk>` "
                              "version `unk`); \"Compared\" says where tui-lab's protocol differs from the seed's."),
                   Block("table", table=card), Block("list", items=notes)]
    if not runs:
        blocks.append(Block("p", f"No runs under `{runs_dir}` yet."))
        return Report(blocks, plots)
    blocks += [Block("h2", "Runs"), Block("table", table=_runs_table(runs, records))]
    groups = seed_groups(runs, price_per_gpu_hour)
    if any(g.n > 1 for g in groups):
        blocks += [Block("h2", "Seed groups"),
                   Block("p", "Runs that differ only in `train.seed`: mean ± sample standard deviation (n − 1) "
                              "over the group's n runs."),
                   Block("table", table=group_table([g for g in groups if g.n > 1], human=True,
                                                    metrics=("best_val_ppl", "best_val_loss", "tokens_per_s")))]
    blocks.append(Block("h2", "Progression"))
    chosen = []
    for name in order:
        run = chosen_run(by_experiment[name], records)
        blocks.append(Block("h3", name))
        if run is None:
            blocks.append(Block("p", "No evaluation yet."))
            continue
        chosen.append(run)
        blocks += [Block("p", f"Validation perplexity of `{run.experiment}/{run.run_id}` at each evaluation."),
                   Block("table", table=progression_table(run))]
        plot = Plot(by_experiment[name], f"{stem}-{name}.png", f"{name}: validation perplexity of its runs")
        plots.append(plot)
        blocks.append(Block("image", plot.title, src=plot.name))
    if len(chosen) > 1:
        plot = Plot(chosen, f"{stem}-experiments.png", "Validation perplexity: each experiment's chosen run")
        plots.append(plot)
        blocks += [Block("h2", "Curves"), Block("image", plot.title, src=plot.name)]
    return Report(blocks, plots)


def to_markdown_report(blocks: list[Block]) -> str:
    """The blocks as GitHub Markdown."""
    out = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append("#" * int(b.kind[1]) + " " + b.text)
        elif b.kind == "p":
            out.append(b.text)
        elif b.kind == "list":
            out.append("\n".join(f"- {item}" for item in b.items))
        elif b.kind == "table" and b.table is not None:
            out.append(to_markdown(b.table).rstrip("\n"))
        elif b.kind == "image":
            out.append(f"![{b.text}]({b.src})")
    return "\n\n".join(out) + "\n"


def _inline_html(text: str) -> str:
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text, quote=False))


NUM = ' class="n"'


def to_html_report(blocks: list[Block], title: str = "tui-lab report") -> str:
    """The blocks as one self-contained HTML page (images linked beside it)."""
    out = ["<!DOCTYPE html>", '<html lang="en">', '<head><meta charset="utf-8">', f"<title>{html.escape(title)}</title>",
           "<style>body{font-family:sans-serif;max-width:80em;margin:2em auto}table{border-collapse:collapse}"
           "td,th{border:1px solid #ccc;padding:2px 6px}td.n{text-align:right}img{max-width:100%}</style>",
           "</head>", "<body>"]
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append(f"<{b.kind}>{_inline_html(b.text)}</{b.kind}>")
        elif b.kind == "p":
            out.append(f"<p>{_inline_html(b.text)}</p>")
        elif b.kind == "list":
            out.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in b.items) + "</ul>")
        elif b.kind == "table" and b.table is not None:
            t = b.table
            head = "".join(f"<th>{html.escape(c.name)}</th>" for c in t.columns)
            body = "".join("<tr>" + "".join(
                f"<td{NUM if c.numeric else ''}>{html.escape(format_cell(c, r.get(c.key)))}</td>"
                for c in t.columns) + "</tr>" for r in t.rows)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif b.kind == "image":
            out.append(f'<figure><img src="{html.escape(b.src)}" alt="{html.escape(b.text)}">'
                       f"<figcaption>{html.escape(b.text)}</figcaption></figure>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"


def write_report(output: Path | str, runs_dir: Path | str, experiments: dict[str, Experiment] | None = None,
                 fmt: str = "md", price_per_gpu_hour: float = 0.0, plots: bool = True) -> list[Path]:
    """Write the report to ``output`` (atomically; its folder is created when missing) and its
    PNG plots beside it; returns every file written, the report last. Plots that cannot be drawn (matplotlib missing, no data)
    are left out and the report says so.

    Raises:
        ValueError: ``fmt`` is not one of :data:`REPORT_FORMATS`.
        OSError: a file cannot be written.
    """
    if fmt not in REPORT_FORMATS:
        raise ValueError(f"unknown report format {fmt!r} (known: {', '.join(REPORT_FORMATS)})")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    report = build_report(runs_dir, experiments, stem=output.stem, price_per_gpu_hour=price_per_gpu_hour)
    written: list[Path] = []
    skipped: dict[str, str] = {}
    if plots:
        from .plot import plot_runs

        for plot in report.plots:
            try:
                written.append(plot_runs(plot.runs, "val_ppl", output.parent / plot.name, x="tokens", title=plot.title))
            except TuiLabError as exc:
                skipped[plot.name] = str(exc)
    blocks = []
    for b in report.blocks:
        if b.kind == "image" and (not plots or b.src in skipped):
            why = skipped.get(b.src, "plots turned off")
            blocks.append(Block("p", f"(plot {b.src} skipped: {why})"))
        else:
            blocks.append(b)
    text = to_markdown_report(blocks) if fmt == "md" else to_html_report(blocks)
    write_output(output, text)
    written.append(output)
    return written


REFERENCE_COLUMNS = [Column("seed_val_ppl", "Seed log ppl"), Column("delta_seed_val_ppl", "Δ seed", "float", 2)]
"""The seed-log columns :func:`with_reference` adds after ``best_val_ppl``: the seed log's
validation perplexity (``invalid`` after it when the reference says so) and Δ = the run's best
val ppl − the seed log's (none for an invalid reference)."""


def with_reference(table: Table, experiments: dict[str, Experiment] | None) -> Table:
    """The runs table ``table`` with :data:`REFERENCE_COLUMNS` after its ``best_val_ppl`` column,
    filled for runs whose experiment has a ``reference`` (the app's results screen); ``table``
    itself when no experiment has one."""
    refs = {n: e.reference for n, e in (experiments or {}).items() if e.reference is not None}
    if not refs:
        return table
    keys = [c.key for c in table.columns]
    at = keys.index("best_val_ppl") + 1 if "best_val_ppl" in keys else len(keys)
    rows = []
    for row in table.rows:
        ref = refs.get(row.get("experiment"))
        extra: dict[str, Any] = {}
        if ref is not None and ref.val_ppl is not None:
            extra["seed_val_ppl"] = f"{ref.val_ppl:,.2f}" + ("" if ref.valid else " invalid")
            ppl = row.get("best_val_ppl")
            if ref.valid and isinstance(ppl, (int, float)):
                extra["delta_seed_val_ppl"] = ppl - ref.val_ppl
        rows.append({**row, **extra})
    return Table(table.title, table.columns[:at] + REFERENCE_COLUMNS + table.columns[at:], rows)
