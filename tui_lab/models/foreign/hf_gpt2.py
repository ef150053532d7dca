"""Hugging Face ``GPT2LMHeadModel`` folders (gpt2, distilgpt2, gpt2-medium, fine-tunes) →
tui-lab's ``gpt`` family.

A folder holds ``config.json`` (``model_type = "gpt2"``) and ``model.safetensors`` (or
``pytorch_model.bin``, read with ``torch.load(weights_only=True)``). The mapping
(``i`` = layer; ``transformer.`` is optional — GPT2Model-only saves have no prefix):

* ``transformer.wte.weight`` → ``tok_emb.weight``; ``wpe`` → ``pos_emb``; ``ln_f`` → ``ln_f``;
* ``h.i.ln_1`` / ``ln_2`` → ``blocks.i.ln_1`` / ``ln_2``;
* ``h.i.attn.c_attn`` ``[d, 3d]`` (a ``Conv1D``: weight stored ``[in, out]``) → transposed
  and split into ``q_proj``, ``k_proj``, ``v_proj`` (``[d, d]`` each, in that order; the bias
  ``[3d]`` likewise); ``h.i.attn.c_proj`` → ``out_proj`` (transposed);
* ``h.i.mlp.c_fc`` → ``ff_in``, ``h.i.mlp.c_proj`` → ``ff_out`` (transposed);
* GPT-2 has no output bias: ``out_bias`` = zeros; ``lm_head.weight``, if saved, must equal
  ``wte`` (tied); the ``attn.bias`` / ``attn.masked_bias`` causal-mask buffers of older
  saves carry no weights and are skipped.

Config: ``n_embd`` → d_model, ``n_head``, ``n_layer``, ``n_positions`` → max_seq_len,
``n_inner`` (null: 4·n_embd) → d_ff, ``vocab_size``, ``activation_function``
(``gelu_new`` / ``gelu_pytorch_tanh`` → ``gelu_tanh``, ``gelu``, ``relu``) and
``layer_norm_epsilon`` → layer_norm_eps. Attention is scaled by ``1/sqrt(head_dim)`` as
tui-lab's; a config that scales otherwise (``scale_attn_weights = false``,
``scale_attn_by_inverse_layer_idx``) or adds cross-attention is refused. Source:
transformers' ``modeling_gpt2.py`` / ``configuration_gpt2.py`` (public facts).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import CheckpointError
from .common import Converted, Source, apply_mapping, expected_shapes, load_torch_file, same_tensor, tensor_state

FORMAT = "Hugging Face GPT-2"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": "gelu_tanh",
               "gelu": "gelu", "relu": "relu"}
"""transformers' ``activation_function`` names → tui-lab's ``model.activation``."""
HUB_PREFIX = "hf:"
HUB_FILES = ["config.json", "model.safetensors", "tokenizer.json"]


def is_hf_folder(path: Path) -> bool:
    """A folder with ``config.json`` and one of :data:`WEIGHT_FILES` (not a tui-lab run folder)."""
    return path.is_dir() and (path / "config.json").is_file() and any((path / f).is_file() for f in WEIGHT_FILES)


def read_config(folder: Path) -> dict[str, Any]:
    """``config.json`` of ``folder`` → tui-lab ``gpt`` model config (plain dict).

    Raises:
        CheckpointError: unreadable JSON, ``model_type`` other than gpt2, or a GPT-2
            variant tui-lab's model does not compute (names the file and the key).
    """
    cfg_path = folder / "config.json"
    try:
        raw = json.loads(cfg_path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{cfg_path}: not readable JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{cfg_path}: not a JSON object")
    mt = raw.get("model_type")
    if mt != "gpt2":
        raise CheckpointError(f"{cfg_path}: model_type {mt!r} is not supported (tui-lab loads model_type "
                              "'gpt2': GPT2LMHeadModel folders such as gpt2, distilgpt2, gpt2-medium)")

    def get(key: str, default: Any = None) -> Any:
        value = raw.get(key, default)
        if default is not None and (isinstance(value, bool) or not isinstance(value, type(default))):
            raise CheckpointError(f"{cfg_path}: key {key!r} = {value!r}: expected {type(default).__name__}")
        return value

    for key, want in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
                      ("add_cross_attention", False)):
        if raw.get(key, want) != want:
            raise CheckpointError(f"{cfg_path}: key {key!r} = {raw.get(key)!r} is not supported "
                                  f"(tui-lab's attention needs {json.dumps(want)})")
    act = raw.get("activation_function", "gelu_new")
    if act not in ACTIVATIONS:
        raise CheckpointError(f"{cfg_path}: key 'activation_function' = {act!r} is not supported "
                              f"(known: {', '.join(ACTIVATIONS)})")
    d = get("n_embd", 768)
    n_inner = raw.get("n_inner")
    if n_inner is not None and (isinstance(n_inner, bool) or not isinstance(n_inner, int)):
        raise CheckpointError(f"{cfg_path}: key 'n_inner' = {n_inner!r}: expected an integer or null")
    eps = raw.get("layer_norm_epsilon", 1e-5)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)):
        raise CheckpointError(f"{cfg_path}: key 'layer_norm_epsilon' = {eps!r}: expected a number")
    return {"kind": "gpt", "vocab_size": get("vocab_size", 50257), "max_seq_len": get("n_positions", 1024),
            "d_model": d, "num_heads": get("n_head", 12), "d_ff": n_inner or 4 * d,
            "num_layers": get("n_layer", 12), "dropout": 0.0, "activation": ACTIVATIONS[act],
            "layer_norm_eps": float(eps)}


def _read_weights(folder: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    st = folder / "model.safetensors"
    if st.is_file():
        from safetensors import SafetensorError
        from safetensors.torch import load

        try:
            return st, tensor_state(load(st.read_bytes()), st, "the weights")
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{st}: not a readable safetensors file (truncated or corrupt?): {exc}") from None
    if (folder / "model.safetensors.index.json").is_file():
        raise CheckpointError(f"{folder}: sharded weights (model.safetensors.index.json) are not supported")
    bin_path = folder / "pytorch_model.bin"
    if bin_path.is_file():
        return bin_path, tensor_state(load_torch_file(bin_path), bin_path, "the weights")
    raise CheckpointError(f"{folder}: no model.safetensors or pytorch_model.bin beside config.json")


def mapping(num_layers: int, d: int, prefix: str) -> dict[str, Source]:
    """tui-lab ``gpt`` key → GPT-2 key and transform (Conv1D transpose, c_attn split);
    ``out_bias`` is filled by the caller (GPT-2 has none)."""
    t = lambda w: w.t()  # noqa: E731  Conv1D [in, out] -> Linear [out, in]
    m = {"tok_emb.weight": Source(f"{prefix}wte.weight"), "pos_emb.weight": Source(f"{prefix}wpe.weight"),
         "ln_f.weight": Source(f"{prefix}ln_f.weight"), "ln_f.bias": Source(f"{prefix}ln_f.bias")}
    for i in range(num_layers):
        b, s = f"blocks.{i}.", f"{prefix}h.{i}."
        for p in ("weight", "bias"):
            m[f"{b}ln_1.{p}"] = Source(f"{s}ln_1.{p}")
            m[f"{b}ln_2.{p}"] = Source(f"{s}ln_2.{p}")
        for j, proj in enumerate(("q_proj", "k_proj", "v_proj")):
            why = "c_attn holds q, k, v side by side: [d_model, 3·d_model]"
            m[f"{b}attn.{proj}.weight"] = Source(f"{s}attn.c_attn.weight",
                                                 lambda w, j=j: w[:, j * d:(j + 1) * d].t() if w.shape[1] == 3 * d
                                                 else None, why)
            m[f"{b}attn.{proj}.bias"] = Source(f"{s}attn.c_attn.bias",
                                               lambda v, j=j: v[j * d:(j + 1) * d] if v.shape[0] == 3 * d else None,
                                               "c_attn's bias is [3·d_model]")
        m[f"{b}attn.out_proj.weight"] = Source(f"{s}attn.c_proj.weight", t, "Conv1D, stored [in, out]")
        m[f"{b}attn.out_proj.bias"] = Source(f"{s}attn.c_proj.bias")
        m[f"{b}ff_in.weight"] = Source(f"{s}mlp.c_fc.weight", t, "Conv1D, stored [in, out]")
        m[f"{b}ff_in.bias"] = Source(f"{s}mlp.c_fc.bias")
        m[f"{b}ff_out.weight"] = Source(f"{s}mlp.c_proj.weight", t, "Conv1D, stored [in, out]")
        m[f"{b}ff_out.bias"] = Source(f"{s}mlp.c_proj.bias")
    return m


def _buffer(key: str) -> bool:
    return key.endswith((".attn.bias", ".attn.masked_bias"))


def convert_folder(folder: Path) -> Converted:
    """Read and convert a ``GPT2LMHeadModel`` folder.

    Raises:
        CheckpointError: see :func:`read_config`; unreadable weights; missing / extra /
            wrong-shape keys (named); an ``lm_head.weight`` that is not the tied ``wte``.
    """
    cfg = read_config(folder)
    weights_path, state = _read_weights(folder)
    prefix = "transformer." if any(k.startswith("transformer.") for k in state) else ""
    expected = expected_shapes(cfg)
    m = mapping(cfg["num_layers"], cfg["d_model"], prefix)
    expected_no_bias = {k: v for k, v in expected.items() if k != "out_bias"}
    consumed: tuple[str, ...] = ()
    head = state.get("lm_head.weight")
    if head is not None:
        wte = state.get(f"{prefix}wte.weight")
        if wte is None or not same_tensor(head, wte):
            raise CheckpointError(f"{weights_path}: key 'lm_head.weight' differs from '{prefix}wte.weight' "
                                  "(an untied head; tui-lab's gpt head is tied to the token embedding)")
        consumed = ("lm_head.weight",)
    out = apply_mapping(state, m, expected_no_bias, weights_path, FORMAT, ignore=_buffer, consumed_elsewhere=consumed)
    out["out_bias"] = torch.zeros(expected["out_bias"])
    notes = [f"{cfg['activation']} activation and LayerNorm eps {cfg['layer_norm_eps']:g} from config.json",
             "no output bias in GPT-2: tui-lab's out_bias set to zero"]
    meta: dict[str, Any] = {"source_format": "hf-gpt2", "notes": notes, "data": {"tokenizer": "gpt2"}}
    if (folder / "tokenizer.json").is_file():
        meta["data"] = {"tokenizer": "hf", "tokenizer_path": str(folder / "tokenizer.json")}
    return Converted(out, cfg, meta)


def hub_folder(spec: str) -> Path:
    """``hf:NAME`` → the local folder of Hub model ``NAME`` (``huggingface_hub``'s cache):
    from the cache if it is there, else downloaded (config, weights, tokenizer).

    Raises:
        CheckpointError: huggingface_hub is not installed, or the model is neither cached
            nor downloadable (the message names the cache folder it looked in).
    """
    name = spec[len(HUB_PREFIX):].strip()
    if not name:
        raise CheckpointError(f"{spec!r}: give a Hub model name after 'hf:' (e.g. hf:gpt2)")
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:
        raise CheckpointError(f"{spec}: needs huggingface_hub (pip install huggingface_hub)") from None
    looked = Path(HF_HUB_CACHE) / ("models--" + name.replace("/", "--"))
    try:
        return Path(snapshot_download(name, allow_patterns=HUB_FILES, local_files_only=True))
    except Exception:  # not cached (LocalEntryNotFoundError and friends): try the Hub unless told not to
        pass
    from ...data.hf_tokenizer import hub_reachable

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    reason = "HF_HUB_OFFLINE is set" if offline else "the Hub is not reachable from here"
    if hub_reachable():
        try:
            return Path(snapshot_download(name, allow_patterns=HUB_FILES))
        except Exception as exc:
            reason = f"the Hub did not answer: {type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
    raise CheckpointError(f"{spec}: not in the Hugging Face cache (looked for {looked}) and not downloadable "
                          f"({reason}); download it on a machine that is online, or give a local folder with "
                          "config.json + model.safetensors")
