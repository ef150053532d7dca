"""`tui-lab bench`: training, decoding, tokenization and start-up figures, side by side in one run.

Training throughput is measured for tui-lab's model and for the reference a user would
otherwise pick — Hugging Face transformers' GPT-2 (``gpt`` family) or DeepSeek-V3
(``deepseek`` family) built at the same shape, eager attention — with the same batch,
the same AdamW step and the same loss, alternating nothing else. MFU = achieved training
FLOP/s ÷ the device's dense bf16 peak, with training FLOPs/token ≈ 6·N + 12·L·d·T
(PaLM appendix B; nanoGPT ``estimate_mfu``).
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any, Callable

import torch

if TYPE_CHECKING:
    from ..models import ModelConfig

PEAK_BF16_FLOPS = {  # dense bf16 tensor-core peak, vendor datasheets (SXM parts where both exist)
    "H200": 989e12, "H100 SXM": 989e12, "H100 80GB HBM3": 989e12, "H100 PCIe": 756e12, "H100 NVL": 835e12,
    "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L40": 181e12, "RTX 4090": 165e12, "RTX 4000 Ada": 107e12,
    "A10G": 70e12, "T4": 65e12,
}


def device_peak(device: torch.device) -> tuple[str, float | None]:
    """(device name, dense bf16 peak FLOP/s or None when unknown, e.g. on a CPU)."""
    if device.type != "cuda":
        return "cpu", None
    name = torch.cuda.get_device_name(device)
    for key, peak in PEAK_BF16_FLOPS.items():  # most specific names first
        if key in name:
            return name, peak
    return name, None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_training(model: torch.nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                  vocab: int, batch: int, seq: int, device: torch.device, steps: int, warmup: int = 2) -> float:
    """Tokens/s of full AdamW training steps (``loss_fn(inputs [B, T], targets [B, T])`` → mean
    cross-entropy, backward, clip, step), bf16 autocast on CUDA as in the trainer."""
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1, fused=device.type == "cuda")
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, vocab, (batch, seq + 1), generator=g).to(device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def step() -> None:
        with amp:
            loss = loss_fn(x[:, :-1], x[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    _sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return batch * seq * steps / (time.perf_counter() - t)


def reference_model(cfg: "ModelConfig") -> tuple[torch.nn.Module, Callable[[torch.Tensor, torch.Tensor], torch.Tensor], str]:
    """transformers' model at the same shape, eager attention, and its loss function.

    Raises:
        ImportError: transformers is not installed (``pip install 'tui-lab[bench]'``).
    """
    import transformers

    if cfg.kind == "gpt":
        conf = transformers.GPT2Config(
            vocab_size=cfg.vocab_size, n_positions=cfg.max_seq_len, n_embd=cfg.d_model,
            n_layer=cfg.num_layers, n_head=cfg.num_heads, n_inner=cfg.d_ff, activation_function="gelu",
            resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout)
        conf._attn_implementation = "eager"
        model = transformers.GPT2LMHeadModel(conf)
        name = f"transformers {transformers.__version__} GPT2LMHeadModel (eager)"
    else:
        hd = cfg.d_model // cfg.num_heads
        conf = transformers.DeepseekV3Config(
            vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.d_ff,
            moe_intermediate_size=cfg.d_ff, num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_heads,
            q_lora_rank=cfg.q_lora_rank, kv_lora_rank=cfg.kv_lora_rank, qk_rope_head_dim=hd,
            qk_nope_head_dim=0, v_head_dim=hd, first_k_dense_replace=cfg.num_layers, n_routed_experts=1,
            n_shared_experts=1, num_experts_per_tok=1, max_position_embeddings=cfg.max_seq_len,
            tie_word_embeddings=True, attention_bias=True, rope_scaling=None)
        conf._attn_implementation = "eager"
        model = transformers.DeepseekV3ForCausalLM(conf)
        name = f"transformers {transformers.__version__} DeepseekV3ForCausalLM (eager, dense MLP)"
    return model, logits_loss(lambda idx: model(input_ids=idx, use_cache=False).logits), name


def logits_loss(forward: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The usual loss: ``[B, T, V]`` logits, cast to float32, then ``F.cross_entropy``."""

    def loss(idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = forward(idx)
        return torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1))

    return loss


def bench_training(cfg: "ModelConfig | dict[str, Any]", device: torch.device, batch: int, seq: int, steps: int,
                   compile: bool = False, fused_cross_entropy: bool = True) -> dict[str, Any]:
    """tui-lab vs the transformers reference at the same shape, measured one after the other.

    tui-lab is timed as the trainer runs it (``fused_cross_entropy``: the chunked head +
    loss of :mod:`tui_lab.models.loss`); ``tui_lab_logits_loss_tokens_per_s`` is the same
    model with the usual float32 logits + ``F.cross_entropy``, the ablation of that choice.
    """
    from ..models import build_model, count_parameters, flops_per_token, model_config

    cfg = model_config(cfg)
    torch.manual_seed(0)
    ours = build_model(cfg)
    n = count_parameters(ours)
    V = cfg.vocab_size

    def ours_loss(m: Callable[..., torch.Tensor]) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        return (lambda idx, y: m(idx, targets=y)) if fused_cross_entropy else logits_loss(m)

    tps = time_training(ours, ours_loss(ours), V, batch, seq, device, steps)
    logits_tps = time_training(ours, logits_loss(ours), V, batch, seq, device, steps) if fused_cross_entropy else tps
    compiled_tps = None
    if compile:
        compiled = torch.compile(ours)
        compiled_tps = time_training(ours, ours_loss(compiled), V, batch, seq, device, steps, warmup=3)
    del ours
    name, peak = device_peak(device)
    fpt = flops_per_token(cfg, seq, n)
    out: dict[str, Any] = {"device": name, "batch_size": batch, "seq_len": seq, "steps": steps, "num_params": n,
                           "fused_cross_entropy": fused_cross_entropy,
                           "pad_vocab_multiple": cfg.pad_vocab_multiple,
                           "tui_lab_tokens_per_s": round(tps, 1),
                           "tui_lab_logits_loss_tokens_per_s": round(logits_tps, 1),
                           "tui_lab_mfu": round(tps * fpt / peak, 4) if peak else None}
    if compiled_tps:
        out["tui_lab_compiled_tokens_per_s"] = round(compiled_tps, 1)
        out["tui_lab_compiled_mfu"] = round(compiled_tps * fpt / peak, 4) if peak else None
    try:
        ref, fwd, ref_name = reference_model(cfg)
    except ImportError:
        out["reference"] = "transformers not installed (pip install 'tui-lab[bench]')"
        return out
    except Exception as exc:  # a transformers version that cannot build this shape
        out["reference"] = f"reference model could not be built: {type(exc).__name__}: {exc}"[:300]
        return out
    ref_n = sum(p.numel() for p in ref.parameters())
    ref_tps = time_training(ref, fwd, V, batch, seq, device, steps)
    out.update({"reference": ref_name, "reference_num_params": ref_n, "reference_tokens_per_s": round(ref_tps, 1),
                "reference_mfu": round(ref_tps * flops_per_token(cfg, seq, ref_n) / peak, 4) if peak else None,
                "speedup_vs_reference": round(tps / ref_tps, 3)})
    if compiled_tps:
        out["compiled_speedup_vs_reference"] = round(compiled_tps / ref_tps, 3)
    return out


def bench_decode(cfg: "ModelConfig | dict[str, Any]", device: torch.device, context: int, new_tokens: int) -> dict[str, Any]:
    """Decode tokens/s with and without the KV cache after a ``context``-token prompt (greedy)."""
    from ..generate import Generator, SamplingParams
    from ..models import build_model, model_config

    cfg = model_config(cfg)

    class _Ids:  # token ids in, token ids out: decoding speed does not depend on the tokenizer
        eot_token = None

        def encode(self, s):  # pragma: no cover - prompts are passed as ids
            raise TypeError

        def decode_bytes(self, ids):
            return b""

    torch.manual_seed(0)
    model = build_model(cfg.model_copy(update={"dropout": 0.0})).to(device)
    prompt = torch.randint(0, cfg.vocab_size, (context,), generator=torch.Generator().manual_seed(1)).tolist()
    params = SamplingParams(temperature=0, max_new_tokens=new_tokens)
    out: dict[str, Any] = {"context_tokens": context, "new_tokens": new_tokens}
    for label, cache in (("kv_cache", True), ("no_cache", False)):
        gen = Generator(model, _Ids(), device, use_kv_cache=cache, on_full="slide")
        gen.complete(prompt[:16], SamplingParams(temperature=0, max_new_tokens=4))  # warm-up
        stats = gen.complete(prompt, params)
        out[f"{label}_tokens_per_s"] = round(stats.tokens_per_s, 1)
        out[f"{label}_ttft_s"] = round(stats.ttft_s or 0.0, 4)
    out["kv_cache_speedup"] = round(out["kv_cache_tokens_per_s"] / out["no_cache_tokens_per_s"], 2)
    return out


def bench_tokenize(data_cfg: Any) -> dict[str, Any]:
    """Tokenize the train split into a fresh cache, then reload it: MB/s and seconds."""
    import tempfile

    from ..data import load_tokenizer, load_tokens

    tok = load_tokenizer(data_cfg.tokenizer, data_cfg.tokenizer_path)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        arr = load_tokens(data_cfg, "train", tok, cache_dir=tmp)
        cold = time.perf_counter() - t
        t = time.perf_counter()
        again = load_tokens(data_cfg, "train", tok, cache_dir=tmp)
        int(again.ids[-1])
        warm = time.perf_counter() - t
    return {"tokenize_s": round(cold, 3), "tokenize_mb_per_s": round(arr.n_bytes / 1e6 / cold, 2),
            "train_tokens": arr.n_tokens, "cache_reload_s": round(warm, 4)}


def bench_startup(config_path: str) -> dict[str, Any]:
    """Seconds from a fresh interpreter to the app's first frame (headless), and whether torch
    was imported on the way."""
    script = ("import time; t0 = time.perf_counter()\n"
              "import asyncio, sys\n"
              "from tui_lab.config import load_experiments\n"
              "from tui_lab.app.app import TuiLabApp\n"
              "async def main():\n"
              f"    app = TuiLabApp(load_experiments({config_path!r})); app.counts_enabled = False\n"
              "    async with app.run_test(size=(120, 40)) as pilot:\n"
              "        await pilot.pause()\n"
              "        print(time.perf_counter() - t0, 'torch' in sys.modules)\n"
              "asyncio.run(main())\n")
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - t
    try:
        first, torch_loaded = r.stdout.split()[-2:]
        return {"startup_first_frame_s": round(float(first), 3), "startup_process_s": round(wall, 3),
                "startup_imports_torch": torch_loaded == "True"}
    except ValueError:
        return {"startup_error": (r.stderr or r.stdout)[-300:]}
