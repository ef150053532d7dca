"""Training throughput: tui-lab vs the transformers reference a user would otherwise pick.

Hugging Face transformers' GPT-2 (``gpt`` family) or DeepSeek-V3 (``deepseek`` family)
built at the same shape, eager attention, with the same batch, the same AdamW step and the
same loss. MFU = achieved training FLOP/s ÷ the device's dense bf16 peak, with training
FLOPs/token ≈ 6·N + 12·L·d·T (PaLM appendix B; nanoGPT ``estimate_mfu``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable

import torch

from .stats import MIN_REPEATS, alternate, put, ratio

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


def training_timer(model: torch.nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                   vocab: int, batch: int, seq: int, device: torch.device, steps: int,
                   warmup: int = 2) -> Callable[[], float]:
    """Set up full AdamW training of ``model`` (``loss_fn(inputs [B, T], targets [B, T])`` → mean
    cross-entropy, backward, clip, step; bf16 autocast on CUDA as in the trainer), run
    ``warmup`` steps, and return a function that times ``steps`` more steps and returns their
    tokens/s (call it once per repetition)."""
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

    def timed() -> float:
        _sync(device)
        t = time.perf_counter()
        for _ in range(steps):
            step()
        _sync(device)
        return batch * seq * steps / (time.perf_counter() - t)

    return timed


def time_training(model: torch.nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                  vocab: int, batch: int, seq: int, device: torch.device, steps: int, warmup: int = 2) -> float:
    """Tokens/s of ``steps`` training steps after ``warmup`` (one repetition of :func:`training_timer`)."""
    return training_timer(model, loss_fn, vocab, batch, seq, device, steps, warmup)()


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
                   compile: bool = False, fused_cross_entropy: bool = True, repeats: int = MIN_REPEATS,
                   ablation: bool = True) -> dict[str, Any]:
    """tui-lab vs the transformers reference at the same shape, in alternating repetitions.

    Each model is set up and warmed up once, then each repetition times ``steps`` training
    steps of tui-lab, the reference, (the ablation, the compiled model) in turn; every
    tokens/s figure is the median of the ``repeats`` repetitions, with ``_min``/``_max``
    and ``_runs`` beside it. tui-lab is timed as the trainer runs it (``fused_cross_entropy``:
    the chunked head + loss of :mod:`tui_lab.models.loss`); ``tui_lab_logits_loss_tokens_per_s``
    (``ablation``) is the same model with the usual float32 logits + ``F.cross_entropy``.
    """
    from ..models import build_model, count_parameters, flops_per_token, model_config

    cfg = model_config(cfg)
    torch.manual_seed(0)
    ours = build_model(cfg)
    n = count_parameters(ours)
    V = cfg.vocab_size
    name, peak = device_peak(device)
    out: dict[str, Any] = {"device": name, "batch_size": batch, "seq_len": seq, "steps": steps, "repeats": repeats,
                           "num_params": n, "fused_cross_entropy": fused_cross_entropy,
                           "pad_vocab_multiple": cfg.pad_vocab_multiple}

    def ours_loss(m: Callable[..., torch.Tensor]) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        return (lambda idx, y: m(idx, targets=y)) if fused_cross_entropy else logits_loss(m)

    measures: dict[str, Callable[[], float]] = {
        "tui_lab": training_timer(ours, ours_loss(ours), V, batch, seq, device, steps)}
    ref_n = None
    try:
        ref, fwd, ref_name = reference_model(cfg)
    except ImportError:
        out["reference"] = "transformers not installed (pip install 'tui-lab[bench]')"
    except Exception as exc:  # a transformers version that cannot build this shape
        out["reference"] = f"reference model could not be built: {type(exc).__name__}: {exc}"[:300]
    else:
        ref_n = sum(p.numel() for p in ref.parameters())
        out.update({"reference": ref_name, "reference_num_params": ref_n})
        measures["reference"] = training_timer(ref, fwd, V, batch, seq, device, steps)
    if ablation and fused_cross_entropy:
        ablated = build_model(cfg)
        ablated.load_state_dict(ours.state_dict())
        measures["tui_lab_logits_loss"] = training_timer(ablated, logits_loss(ablated), V, batch, seq, device, steps)
    if compile:
        compiled_model = build_model(cfg)
        compiled = torch.compile(compiled_model)
        measures["tui_lab_compiled"] = training_timer(compiled_model, ours_loss(compiled), V, batch, seq, device,
                                                      steps, warmup=3)
    runs = alternate(measures, repeats)
    for label, values in runs.items():
        tps = put(out, f"{label}_tokens_per_s", values)
        n_params = ref_n if label == "reference" else n
        out[f"{label}_mfu"] = round(tps * flops_per_token(cfg, seq, n_params) / peak, 4) if peak else None
    if "reference" in runs:
        ratio(out, "speedup_vs_reference", runs["tui_lab"], runs["reference"])
        if "tui_lab_compiled" in runs:
            ratio(out, "compiled_speedup_vs_reference", runs["tui_lab_compiled"], runs["reference"])
    if "tui_lab_logits_loss" not in runs:
        out["tui_lab_logits_loss_tokens_per_s"] = out["tui_lab_tokens_per_s"]
    return out
