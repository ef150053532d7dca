"""`tui-lab bench`: alternating repetitions, medians with min/max, JSON alone on stdout."""

from __future__ import annotations

import json
import subprocess
import sys

from tui_lab.bench.stats import alternate, put, ratio

from tiny import tiny_toml


def test_alternate_takes_turns_and_put_reports_the_median_and_range():
    order: list[str] = []
    values = iter([5.0, 1.0, 9.0, 2.0, 7.0, 3.0])

    def measure(label):
        def run():
            order.append(label)
            return next(values)
        return run

    runs = alternate({"ours": measure("ours"), "ref": measure("ref")}, 3)
    assert order == ["ours", "ref"] * 3
    assert runs == {"ours": [5.0, 9.0, 7.0], "ref": [1.0, 2.0, 3.0]}
    out: dict = {}
    assert put(out, "x", runs["ours"]) == 7.0
    assert (out["x"], out["x_min"], out["x_max"], out["x_runs"]) == (7.0, 5.0, 9.0, [5.0, 9.0, 7.0])
    ratio(out, "r", runs["ours"], runs["ref"])
    assert out["r"] == 3.5 and out["r_min"] == round(7 / 3, 3) and out["r_max"] == 5.0


def test_bench_json_is_alone_on_stdout_with_medians_of_three(tmp_path):
    (tmp_path / "experiments.toml").write_text(tiny_toml())
    r = subprocess.run([sys.executable, "-m", "tui_lab", "bench", "-e", "tiny", "--steps", "1", "--repeats", "3",
                        "--context", "16", "--new-tokens", "8", "--skip", "tokenize", "--skip", "startup",
                        "--device", "cpu", "--threads", "1", "--json"],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip().splitlines()) == 1  # progress went to stderr
    out = json.loads(r.stdout)
    assert out["machine"].endswith("1 threads") and len(out["load_average"]) == 3
    train, decode = out["train"], out["decode"]
    for fig, key in ((train, "tui_lab_tokens_per_s"), (decode, "kv_cache_tokens_per_s"),
                     (decode, "sliced_cache_tokens_per_s"), (decode, "no_cache_tokens_per_s")):
        assert len(fig[f"{key}_runs"]) == 3
        assert fig[f"{key}_min"] <= fig[key] <= fig[f"{key}_max"]
    assert "static_vs_sliced_cache" in decode
    if "reference_tokens_per_s" in train:  # transformers installed (the `bench` extra)
        assert len(train["reference_tokens_per_s_runs"]) == 3
        assert "static_vs_reference_generate" in decode and decode["reference_generate_tokens_per_s"] > 0


def test_bench_startup_runs_both_apps_and_tui_lab_shows_its_first_frame_without_torch(tmp_path):
    """`tui-lab bench` start-up part, run for real: both apps open headless in fresh
    interpreters, alternating; tui-lab's first frame comes before torch and pydantic load."""
    from tui_lab.bench.startup import bench_startup

    (tmp_path / "experiments.toml").write_text(tiny_toml("demo"))
    out = bench_startup(str(tmp_path / "experiments.toml"), repeats=2)
    assert "startup_error" not in out, out.get("startup_error")
    assert len(out["startup_first_frame_s_runs"]) == len(out["bare_textual_first_frame_s_runs"]) == 2
    assert out["startup_ratio_vs_bare"] > 0
    assert out["startup_imports_torch"] is False
    assert out["startup_imports_pydantic_before_first_frame"] is False


def test_bench_decode_with_compile_times_the_compiled_static_step(monkeypatch):
    """`--compile` adds the compiled decode step (the capturable static cache) beside the eager
    figures; the step really goes through torch.compile (here with a backend that records the
    graph and runs it eagerly, so the test does not wait for inductor)."""
    import torch

    from tui_lab.bench.decode import bench_decode
    from tiny import TINY_MODEL

    graphs = []

    def recording_backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: real_compile(fn, backend=recording_backend,
                                                                         fullgraph=True))
    out = bench_decode(TINY_MODEL, torch.device("cpu"), context=16, new_tokens=8, repeats=2, reference=False,
                       compile=True)
    assert len(out["kv_cache_compiled_tokens_per_s_runs"]) == 2 and out["kv_cache_compiled_tokens_per_s"] > 0
    assert "compiled_vs_eager_static" in out and out["compile_s"] >= 0
    assert len(graphs) == 1  # one graph, reused at every position of every repetition
