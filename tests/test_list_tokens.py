"""`tui-lab list --json`: train_tokens and val_tokens for every experiment whose data is local or
cached (with the experiment's data.join), None for a Hub dataset not cached yet."""

from __future__ import annotations

import json
import subprocess
import sys

from tiny import tiny_toml


def test_list_json_counts_local_and_cached_splits(tmp_path, shared_data):
    raw_valid = tmp_path / "wt2-raw"  # the raw validation file alone (no train split here)
    raw_valid.mkdir()
    (raw_valid / "wiki.valid.raw").write_bytes((shared_data / "wikitext-2-raw" / "wiki.valid.raw").read_bytes())
    gpt2 = shared_data / "gpt2"
    seed_data = (f'[experiments.seedval.data]\npath = "{raw_valid}"\ntokenizer = "gpt2"\n'
                 f'tokenizer_path = "{gpt2}"\njoin = "strip-lines"\n')
    hub_data = '[experiments.hub.data]\ndataset = "Salesforce/wikitext"\nconfig = "wikitext-103-raw-v1"\ntokenizer = "gpt2"\n'
    gpt_model = ("kind = \"gpt\"\nvocab_size = 50257\nmax_seq_len = 64\nd_model = 16\nnum_heads = 2\nd_ff = 32\n"
                 "num_layers = 1\n")
    text = tiny_toml("tiny")
    for name, data in (("seedval", seed_data), ("hub", hub_data)):
        text += (f"[experiments.{name}]\n[experiments.{name}.model]\n{gpt_model}{data}"
                 f"[experiments.{name}.train]\nbatch_size = 2\nmax_steps = 1\nlr = 1e-3\n")
    path = tmp_path / "experiments.toml"
    path.write_text(text)
    r = subprocess.run([sys.executable, "-m", "tui_lab", "list", "--json", "--config", str(path)],
                       capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    from tui_lab.config import load_experiments
    from tui_lab.data import load_tokenizer, load_tokens

    tiny = load_experiments(path).get("tiny").data
    byte = load_tokenizer("byte")
    assert rows["tiny"]["train_tokens"] == load_tokens(tiny, "train", byte).n_tokens > 0
    assert rows["tiny"]["val_tokens"] == load_tokens(tiny, "validation", byte).n_tokens > 0
    # the seeds' protocol on the raw WikiText-2 validation file: the logs' "Val tokens: 242,643"
    assert rows["seedval"]["val_tokens"] == 242_643 and rows["seedval"]["train_tokens"] is None
    assert (rows["hub"]["train_tokens"], rows["hub"]["val_tokens"]) == (None, None)  # never downloads
