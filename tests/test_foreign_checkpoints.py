"""Checkpoints from outside tui-lab: Hugging Face GPT-2 folders, the seed scripts' `.pt` files
(exp1-exp6) and exp7's, each converted onto a tui-lab family with the same logits; `tui-lab
import` into a run folder that the result tables list; hostile files refused with the file and
the key named, in the CLI (exit 2, no traceback) and in the chat pane (the app keeps running).

The reference models are built here: a random `transformers.GPT2LMHeadModel` saved with
`save_pretrained`; seed and exp7 state dicts renamed from a tui-lab model's weights through
the documented mappings; and, for exp7, an independent forward pass written from the
format's facts (de-interleaved RoPE, DeepSeek-V3's MLA with no "nope" part)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tui_lab.data import ByteTokenizer
from tui_lab.generate import Generator, SamplingParams
from tui_lab.models import build_model
from tui_lab.models.checkpoint import CheckpointError, load_model
from tui_lab.models.foreign import exp7 as exp7_format
from tui_lab.models.foreign import seed as seed_format

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_torch_thread")

# exp1's shape (869,153 parameters): experiments.toml names its heads
SEED_CFG = dict(kind="gpt", vocab_size=50257, max_seq_len=512, d_model=16, num_heads=2, d_ff=64, num_layers=2,
                activation="relu")
EXP7_CFG = dict(kind="deepseek", vocab_size=50257, max_seq_len=64, d_model=32, num_heads=4, d_ff=64, num_layers=2,
                q_lora_rank=16, kv_lora_rank=16)


def randomized(cfg: dict, seed: int = 0) -> torch.nn.Module:
    """A tui-lab model whose every weight (biases and norm gains too) is random."""
    torch.manual_seed(seed)
    model = build_model(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def rename(model: torch.nn.Module, mapping: dict, head_key: str, head_from: str) -> dict[str, torch.Tensor]:
    """tui-lab's weights under the foreign key names (``mapping``: tui-lab key → Source), plus
    the tied head saved as the foreign model saves it (the same tensor under ``head_key``)."""
    ours = model.state_dict()
    out = {src.key: ours[key].clone() for key, src in mapping.items() if key in ours}
    out[head_key] = out[head_from]
    return out


def logits(model: torch.nn.Module, idx: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(idx)


def cli(*args: str, env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui_lab", *args], capture_output=True, text=True, timeout=180,
                          cwd=cwd, env={**os.environ, "NO_COLOR": "1", **(env or {})})


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture
def seed_pt(tmp_path) -> tuple[Path, torch.nn.Module]:
    """A seed-format `mha_model_best.pt` (the seeds' save call and key names) and the model it came from."""
    model = randomized(SEED_CFG)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)  # a real optimizer state to save
    model(torch.randint(0, 50257, (1, 8)), targets=torch.randint(0, 50257, (1, 8))).backward()
    opt.step()
    state = rename(model, seed_format.mapping(2), "lm_head.weight", "embeddings.token_embed.weight")
    path = tmp_path / "mha_model_best.pt"
    torch.save({"epoch": 7, "model_state_dict": state, "optimizer_state_dict": opt.state_dict(), "train_loss": 6.1,
                "val_loss": 6.5, "val_perplexity": math.exp(6.5)}, path)
    return path, model


@pytest.fixture
def exp7_pt(tmp_path) -> tuple[Path, torch.nn.Module]:
    """An exp7-format periodic checkpoint (`exp7_checkpoint_step_{step}.pt`) and its model."""
    model = randomized(EXP7_CFG, seed=1)
    state = rename(model, exp7_format.mapping(2), "lm_head.weight", "token_embedding.weight")
    results = {"model_name": "exp7_attention_mlp", "config": {"d_model": 32, "n_heads": 4, "max_seq_len": 64,
                                                              "log_milestones": (2000, 5000)},
               "training_history": [{"step": 3000, "train_loss": 0.9, "val_loss": 0.8, "val_perplexity": 2.2}]}
    path = tmp_path / "exp7_checkpoint_step_3000.pt"
    torch.save({"step": 3000, "model_state_dict": state, "optimizer_state_dict": {"state": {}, "param_groups": []},
                "scheduler_state_dict": {"last_epoch": 3000}, "results": results}, path)
    return path, model


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    """A random `GPT2LMHeadModel` (non-zero biases) saved with `save_pretrained`."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(vocab_size=1000, n_positions=64, n_embd=32, n_layer=2, n_head=4)
    torch.manual_seed(0)
    ref = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    folder = tmp_path_factory.mktemp("hf") / "tiny-gpt2"
    ref.save_pretrained(folder)
    return folder, ref


# ------------------------------------------------------------------------------ Hugging Face GPT-2
def test_a_saved_gpt2lmheadmodel_gives_the_same_logits(hf_folder):
    folder, ref = hf_folder
    ours, meta = load_model(folder)
    assert meta["source_format"] == "hf-gpt2" and ours.config.activation == "gelu_tanh"
    idx = torch.randint(0, 1000, (2, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = ref(idx).logits
    assert torch.allclose(logits(ours, idx), want, atol=1e-4), (logits(ours, idx) - want).abs().max()


def test_gpt2_greedy_tokens_match_transformers_with_and_without_the_kv_cache(hf_folder):
    folder, ref = hf_folder
    ours, _ = load_model(folder)
    prompt = [5, 17, 300, 42, 9]
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(20):
            ids.append(int(ref(torch.tensor([ids])).logits[0, -1].argmax()))
    want = ids[len(prompt):]
    params = SamplingParams(temperature=0, max_new_tokens=20)
    for cache in (True, False):
        got = Generator(ours, ByteTokenizer(), "cpu", use_kv_cache=cache).complete(prompt, params).token_ids
        assert got == want, (cache, got, want)


def test_a_pytorch_model_bin_folder_loads_the_same(hf_folder, tmp_path):
    folder, ref = hf_folder
    other = tmp_path / "bin"
    other.mkdir()
    (other / "config.json").write_bytes((folder / "config.json").read_bytes())
    # as the Hub's original gpt2 pytorch_model.bin: GPT2Model keys (no "transformer."), mask buffers saved
    state = dict(ref.transformer.state_dict())
    for i in range(2):
        state[f"h.{i}.attn.bias"] = torch.ones(1, 1, 64, 64).tril()
        state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    torch.save(state, other / "pytorch_model.bin")
    a, _ = load_model(folder)
    b, _ = load_model(other)
    idx = torch.randint(0, 1000, (1, 16))
    assert torch.equal(logits(a, idx), logits(b, idx))


def test_hf_colon_name_offline_names_the_cache_folder_it_looked_for(tmp_path):
    cache = tmp_path / "hub"
    r = cli("chat", "hf:gpt2", "--prompt", "x", "--device", "cpu",
            env={"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path / "hf")})
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert str(cache / "models--gpt2") in " ".join(r.stderr.split()), r.stderr


# ------------------------------------------------------------------------------ the seed scripts
def test_a_seed_checkpoint_loads_back_to_identical_logits_with_heads_from_experiments_toml(seed_pt):
    path, model = seed_pt
    ours, meta = load_model(path, experiments_file=ROOT / "experiments.toml")
    assert ours.config.num_heads == 2 and ours.config.activation == "relu"
    assert "exp1" in " ".join(meta["notes"]) and "869,153 parameters" in " ".join(meta["notes"])
    assert meta["epoch"] == 7 and meta["val_loss"] == 6.5 and meta["val_ppl"] == pytest.approx(math.exp(6.5))
    idx = torch.randint(0, 50257, (2, 24))
    assert torch.equal(logits(ours, idx), logits(model, idx))


def test_a_seed_checkpoint_of_a_shape_no_experiment_has_needs_num_heads(tmp_path):
    model = randomized({**SEED_CFG, "d_model": 24, "num_heads": 3})
    path = tmp_path / "odd.pt"
    state = rename(model, seed_format.mapping(2), "lm_head.weight", "embeddings.token_embed.weight")
    torch.save({"epoch": 1, "model_state_dict": state}, path)
    with pytest.raises(CheckpointError, match="--num-heads"):
        load_model(path, experiments_file=ROOT / "experiments.toml")
    ours, meta = load_model(path, num_heads=3)
    assert meta["notes"] == ["num_heads 3 from --num-heads"]
    idx = torch.randint(0, 50257, (1, 12))
    assert torch.equal(logits(ours, idx), logits(model, idx))


def test_chat_cli_streams_from_a_seed_checkpoint_and_shows_its_epoch_and_perplexity(seed_pt, gpt2_dir):
    path, _ = seed_pt
    r = cli("chat", str(path), "--prompt", "The cat sat on the", "--max-new-tokens", "5", "--temperature", "0",
            "--json", "--device", "cpu", "--tokenizer-path", str(gpt2_dir))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["n_tokens"] == 5
    said = " ".join(r.stderr.split())
    assert "epoch 7" in said and f"val ppl {math.exp(6.5):.2f}" in said and "exp1" in said, said


def gpt2_tokenizer_json(gpt2_dir: Path, out: Path) -> Path:
    """GPT-2's BPE as a Hugging Face ``tokenizer.json`` (what Hub GPT-2 folders ship), built
    from OpenAI's offline files."""
    tokenizers = pytest.importorskip("tokenizers")
    tok = tokenizers.Tokenizer(tokenizers.models.BPE.from_file(str(gpt2_dir / "encoder.json"),
                                                               str(gpt2_dir / "vocab.bpe")))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tokenizers.decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>"])
    tok.save(str(out))
    return out


# ------------------------------------------------------------------------------ exp7
def exp7_reference_logits(sd: dict, cfg: dict, idx: torch.Tensor, causal: bool, block_eps: float) -> torch.Tensor:
    """Exp7's forward pass from its format's facts (not tui-lab's code): embedding × sqrt(d);
    RMSNorm pre-norm blocks; DeepSeek-V3 MLA with q_lora / kv_lora ranks, a RoPE key shared by
    the heads and no "nope" part, RoPE applied after de-interleaving each head's pairs into two
    halves (``rotate_half``); ``causal=False`` adds exp7's all-ones mask instead; SiLU-gated MLP;
    tied head."""
    d, H, L, r = cfg["d_model"], cfg["num_heads"], cfg["num_layers"], cfg["kv_lora_rank"]
    hd, (B, T) = d // H, idx.shape
    rms = lambda v, w, e: w * (v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + e))  # noqa: E731
    inv = 1.0 / 10000.0 ** (torch.arange(0, hd, 2).float() / hd)
    freqs = torch.outer(torch.arange(T).float(), inv)
    cos, sin = torch.cat([freqs, freqs], -1).cos(), torch.cat([freqs, freqs], -1).sin()

    def rope(t):
        b, h, s, dd = t.shape
        t = t.view(b, h, s, dd // 2, 2).transpose(4, 3).reshape(b, h, s, dd)
        return t * cos + torch.cat([-t[..., dd // 2:], t[..., : dd // 2]], -1) * sin

    x = F.embedding(idx, sd["token_embedding.weight"]) * math.sqrt(d)
    for i in range(L):
        p, a, m = f"transformer_blocks.{i}.", f"transformer_blocks.{i}.attention.attention.", \
            f"transformer_blocks.{i}.feed_forward.mlp."
        h = rms(x, sd[p + "norm1.weight"], block_eps)
        q = F.linear(rms(F.linear(h, sd[a + "q_a_proj.weight"], sd[a + "q_a_proj.bias"]),
                         sd[a + "q_a_layernorm.weight"], 1e-6), sd[a + "q_b_proj.weight"])
        c, k = F.linear(h, sd[a + "kv_a_proj_with_mqa.weight"], sd[a + "kv_a_proj_with_mqa.bias"]).split([r, hd], -1)
        v = F.linear(rms(c, sd[a + "kv_a_layernorm.weight"], 1e-6), sd[a + "kv_b_proj.weight"])
        q = rope(q.view(B, T, H, hd).transpose(1, 2))
        k = rope(k.view(B, T, 1, hd).transpose(1, 2))
        scores = q @ k.transpose(-1, -2) * hd ** -0.5
        if causal:
            scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        else:
            scores = scores + torch.ones(B, 1, T, T, dtype=torch.bool)
        y = (scores.softmax(-1) @ v.view(B, T, H, hd).transpose(1, 2)).transpose(1, 2).reshape(B, T, d)
        x = x + F.linear(y, sd[a + "o_proj.weight"], sd[a + "o_proj.bias"])
        h = rms(x, sd[p + "norm2.weight"], block_eps)
        x = x + F.linear(F.silu(F.linear(h, sd[m + "gate_proj.weight"])) * F.linear(h, sd[m + "up_proj.weight"]),
                         sd[m + "down_proj.weight"])
    return rms(x, sd["norm.weight"], block_eps) @ sd["token_embedding.weight"].T


def test_an_exp7_checkpoint_loads_back_to_identical_logits(exp7_pt):
    path, model = exp7_pt
    ours, meta = load_model(path)
    assert ours.config.kind == "deepseek" and ours.config.num_heads == 4 and ours.config.max_seq_len == 64
    assert meta["step"] == 3000 and meta["val_ppl"] == 2.2 and meta["tokenizer_hint"] == "HuggingFaceTB/SmolLM-135M"
    idx = torch.randint(0, 50257, (2, 20))
    assert torch.equal(logits(ours, idx), logits(model, idx))


def test_exp7_weights_compute_exp7s_function_causally_and_its_missing_mask_is_the_difference(exp7_pt):
    path, _ = exp7_pt
    ours, _ = load_model(path)
    sd = torch.load(path, weights_only=True)["model_state_dict"]
    idx = torch.randint(0, 50257, (2, 20), generator=torch.Generator().manual_seed(3))
    got = logits(ours, idx)
    with torch.no_grad():
        same_eps = exp7_reference_logits(sd, EXP7_CFG, idx, causal=True, block_eps=1e-6)
        exp7_eps = exp7_reference_logits(sd, EXP7_CFG, idx, causal=True, block_eps=torch.finfo(torch.float32).eps)
        unmasked = exp7_reference_logits(sd, EXP7_CFG, idx, causal=False, block_eps=1e-6)
    assert torch.allclose(got, same_eps, atol=1e-4), (got - same_eps).abs().max()
    assert torch.allclose(got, exp7_eps, atol=1e-3), (got - exp7_eps).abs().max()  # RMSNorm eps 1e-6 vs 1.19e-7
    assert (got[:, -1] - unmasked[:, -1]).abs().max() > 1e-3  # exp7's own (non-causal) logits differ


def test_exp7_chat_needs_its_tokenizer_and_accepts_a_tokenizer_json(exp7_pt, gpt2_dir, tmp_path, monkeypatch):
    from tui_lab.generate import GenerationError

    path, _ = exp7_pt
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(GenerationError, match="SmolLM-135M.*--tokenizer-path"):
        Generator.from_checkpoint(path, "cpu")
    gpt2_tokenizer_json(gpt2_dir, tmp_path / "tokenizer.json")
    params = SamplingParams(temperature=0, max_new_tokens=12)
    outs = [Generator.from_checkpoint(path, "cpu", str(tmp_path), use_kv_cache=c).complete("Human: hi", params)
            for c in (True, False)]
    assert outs[0].token_ids == outs[1].token_ids and len(outs[0].token_ids) == 12
    gen = Generator.from_checkpoint(path, "cpu", str(tmp_path))
    from tui_lab.data import load_tokenizer

    text = "naïve café → 東京"
    assert gen.tokenizer.encode(text) == load_tokenizer("gpt2", gpt2_dir).encode(text)
    assert gen.tokenizer.decode(gen.tokenizer.encode(text)) == text


# ------------------------------------------------------------------------------ hostile inputs
def hostile(tmp_path: Path, seed_pt, exp7_pt) -> dict[str, tuple[Path, list[str]]]:
    """name → (checkpoint, words the refusal must contain besides the file name)."""
    seed_path, _ = seed_pt
    exp7_path, _ = exp7_pt
    out: dict[str, tuple[Path, list[str]]] = {}
    marker = tmp_path / "code-ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    p = tmp_path / "evil_seed.pt"
    torch.save({"epoch": 1, "model_state_dict": {"embeddings.token_embed.weight": Evil()}}, p)
    out["pickle"] = (p, ["refused", "needs code"])
    p = tmp_path / "cut_seed.pt"
    p.write_bytes(seed_path.read_bytes()[: seed_path.stat().st_size // 2])
    out["truncated"] = (p, ["truncated or corrupt"])
    obj = torch.load(seed_path, weights_only=True)
    variants = {
        "missing": (lambda sd: sd.pop("blocks.1.ffn.linear2.bias"), ["'blocks.1.ffn.linear2.bias'", "missing"]),
        "extra": (lambda sd: sd.__setitem__("blocks.0.attention.rotary.inv_freq", torch.ones(4)),
                  ["'blocks.0.attention.rotary.inv_freq'", "unexpected"]),
        "wrong shape": (lambda sd: sd.__setitem__("blocks.0.attention.k_proj.weight", torch.ones(16, 17)),
                        ["'blocks.0.attention.k_proj.weight'", "[16, 17]", "wrong shape"]),
    }
    for name, (edit, words) in variants.items():
        sd = dict(obj["model_state_dict"])
        edit(sd)
        p = tmp_path / f"seed_{name.replace(' ', '_')}.pt"
        torch.save({**obj, "model_state_dict": sd}, p)
        out[name] = (p, words)
    e7 = torch.load(exp7_path, weights_only=True)
    sd = dict(e7["model_state_dict"])
    key = "transformer_blocks.0.attention.attention.kv_b_proj.weight"
    sd[key] = torch.ones(64, 16)  # a "nope" part: keys and values from kv_b_proj
    p = tmp_path / "exp7_nope.pt"
    torch.save({**e7, "model_state_dict": sd}, p)
    out["exp7 nope"] = (p, [repr(key), "qk_nope_head_dim"])
    folder = tmp_path / "llama"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 32}))
    from safetensors.torch import save_file

    save_file({"model.embed_tokens.weight": torch.zeros(10, 4)}, str(folder / "model.safetensors"))
    out["unsupported model_type"] = (folder, ["config.json", "model_type 'llama' is not supported"])
    return out


def test_hostile_foreign_checkpoints_are_refused_naming_file_and_key(tmp_path, seed_pt, exp7_pt):
    for name, (path, words) in hostile(tmp_path, seed_pt, exp7_pt).items():
        with pytest.raises(CheckpointError) as err:
            load_model(path, experiments_file=ROOT / "experiments.toml")
        msg = str(err.value)
        assert path.name in msg and all(w in msg for w in words), (name, msg)
    assert not (tmp_path / "code-ran").exists()


@pytest.mark.slow
def test_hostile_foreign_checkpoints_in_the_cli_exit_2_without_a_traceback(tmp_path, seed_pt, exp7_pt):
    for name, (path, words) in hostile(tmp_path, seed_pt, exp7_pt).items():
        r = cli("chat", str(path), "--prompt", "x", "--device", "cpu")
        said = " ".join(r.stderr.split())
        assert r.returncode == 2 and "Traceback" not in r.stderr, (name, r.stderr)
        assert path.name in said and all(w in said for w in words), (name, said)
    assert not (tmp_path / "code-ran").exists()


async def test_hostile_foreign_checkpoints_in_the_chat_pane_keep_the_app_running(tmp_path, seed_pt, exp7_pt):
    from textual.app import App

    from tui_lab.app.screens.chat import ChatPane, ChatScreen

    app = App()
    async with app.run_test(size=(160, 40)) as pilot:
        for name, (path, words) in hostile(tmp_path, seed_pt, exp7_pt).items():
            await app.push_screen(ChatScreen(path, device="cpu"))
            pane = app.screen.query_one(ChatPane)
            shown = ""
            for _ in range(200):
                await pilot.pause(0.05)
                shown = " ".join(str(pane.query_one(".pane-stats").render()).split())
                if "cannot load" in shown:
                    break
            assert "cannot load" in shown and all(w in shown for w in words[:1]), (name, shown)
            await pilot.press("escape")
            await pilot.pause()
        assert app.is_running
    assert not (tmp_path / "code-ran").exists()


async def test_the_chat_panes_open_dialog_opens_a_gpt2_folder_and_shows_what_it_is(tmp_path, gpt2_dir):
    from textual.app import App

    from tui_lab.app.screens.chat import ChatPane, ChatScreen, PickCheckpoint

    transformers = pytest.importorskip("transformers")
    folder = tmp_path / "gpt2-folder"  # as a Hub folder: weights, config and tokenizer.json
    transformers.GPT2LMHeadModel(transformers.GPT2Config(n_positions=32, n_embd=16, n_layer=1, n_head=2)
                                 ).save_pretrained(folder)
    gpt2_tokenizer_json(gpt2_dir, folder / "tokenizer.json")

    class Host(App):
        runs_dir = tmp_path / "no-runs"

    app = Host()
    async with app.run_test(size=(160, 40)) as pilot:
        screen = ChatScreen(None, device="cpu")
        await app.push_screen(screen)
        await pilot.pause()
        assert isinstance(app.screen, PickCheckpoint)
        field = app.screen.query_one("#pick-path")
        field.value = str(folder)
        field.focus()
        await pilot.press("enter")
        for _ in range(100):
            await pilot.pause(0.05)
            if screen.panes:
                break
        pane = screen.query_one(ChatPane)
        for _ in range(200):
            await pilot.pause(0.05)
            if pane.session is not None:
                break
        shown = " ".join(str(pane.query_one(".pane-stats").render()).split())
        assert pane.session is not None and "Hugging Face GPT-2" in shown and "ready" in shown, shown


# ------------------------------------------------------------------------------ tui-lab import
@pytest.mark.slow
def test_import_puts_a_seed_checkpoint_in_the_results_table(seed_pt, tmp_path, gpt2_dir):
    path, model = seed_pt
    runs = tmp_path / "runs"
    r = cli("import", str(path), "--runs-dir", str(runs), "--experiment", "exp1")
    assert r.returncode == 0, r.stderr
    run_dir = Path(r.stdout.strip().splitlines()[-1])
    assert run_dir.parent == runs / "exp1"
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "imported" and info["epoch"] == 7 and info["best_val_loss"] == 6.5
    r = cli("export", "--runs-dir", str(runs), "--format", "json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    rows = rows["rows"] if isinstance(rows, dict) and "rows" in rows else rows
    row = next(x for x in rows if x.get("run_id") == run_dir.name)
    assert row["experiment"] == "exp1" and row["status"] == "imported" and row["num_params"] == 869_153
    assert row["best_val_loss"] == 6.5 and row["best_val_ppl"] == pytest.approx(math.exp(6.5))
    assert row["final_train_loss"] == 6.1 and row["best_epoch"] == 7
    gen = Generator.from_checkpoint(run_dir, "cpu", str(gpt2_dir))  # chat with the imported run
    idx = torch.randint(0, 50257, (1, 16))
    assert torch.equal(logits(gen.model, idx), logits(model, idx))


def test_import_refuses_a_non_empty_output_and_writes_nothing_half(seed_pt, tmp_path):
    from tui_lab.models.foreign.importer import import_checkpoint

    path, _ = seed_pt
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(CheckpointError, match="not empty"):
        import_checkpoint(path, tmp_path / "runs", output=out, num_heads=2)
    run = import_checkpoint(path, tmp_path / "runs", output=tmp_path / "fresh", num_heads=2, experiment="exp1")
    assert sorted(p.name for p in run.path.iterdir()) == ["checkpoints", "config.json", "run.json"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_import_of_an_exp7_checkpoint_keeps_its_step_and_figures_but_not_tui_labs_exp7_recipe(exp7_pt, tmp_path):
    from tui_lab.models.foreign.importer import import_checkpoint

    path, model = exp7_pt
    run = import_checkpoint(path, tmp_path / "runs", experiments_file=ROOT / "experiments.toml")
    assert run.experiment == "exp7"
    config = json.loads(run.config_path.read_text())
    assert set(config) == {"name", "description", "model"} and config["model"]["kind"] == "deepseek"
    info = run.read_run()
    assert info["status"] == "imported" and info["step"] == 3000 and info["source_val_ppl"] == 2.2
    ours, meta = load_model(run.best_weights_path)
    assert meta["tokenizer_hint"] == "HuggingFaceTB/SmolLM-135M"
    idx = torch.randint(0, 50257, (1, 10))
    assert torch.equal(logits(ours, idx), logits(model, idx))
