"""Hugging Face ``tokenizer.json`` tokenizers (the ``tokenizers`` library), for checkpoints
trained with one: exp7's (``HuggingFaceTB/SmolLM-135M``, 49,152 tokens) or a Hub GPT-2 folder.

Byte-level BPE vocabularies (GPT-2's, SmolLM's) store each token as the printable
characters of GPT-2's ``bytes_to_unicode`` table (Radford et al. 2019, the released
``encoder.py``); :meth:`HFTokenizer.decode_bytes` maps them back to the exact bytes, so a
character split across tokens streams correctly. Other vocabularies decode token by token.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from . import DataError

EOT_NAMES = ("<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>")


def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable character → byte table, inverted."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


class HFTokenizer:
    """A ``tokenizers.Tokenizer`` behind tui-lab's :class:`~tui_lab.data.tokenizers.Tokenizer`
    protocol. ``encode`` adds no special tokens; ``eot_token`` is the id of
    ``<|endoftext|>`` (or ``</s>``...) if the vocabulary has one."""

    def __init__(self, path: Path):
        try:
            from tokenizers import Tokenizer as _Tok
        except ImportError:
            raise DataError(f"{path}: reading a tokenizer.json needs the tokenizers package "
                            "(pip install tokenizers)") from None

        try:
            self.tok = _Tok.from_file(str(path))
        except Exception as exc:  # the Rust side raises plain Exception subclasses
            raise DataError(f"{path}: not a readable tokenizer.json: {' '.join(str(exc).split())[:200]}") from None
        self.name = f"hf:{path.parent.name or path.name}"
        self.vocab_size = self.tok.get_vocab_size(with_added_tokens=True)
        self.eot_token = next((i for n in EOT_NAMES if (i := self.tok.token_to_id(n)) is not None), None)
        self.fingerprint = f"hf-{self.vocab_size}-{path.stat().st_size}"
        decoder = self.tok.decoder
        self._bytes: dict[str, int] | None = _byte_decoder() if decoder is not None and "ByteLevel" in str(decoder) else None
        self._special = {t for t in (self.tok.get_added_tokens_decoder() or {}).values() if getattr(t, "special", False)}

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str], num_threads: int = 8) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(texts, add_special_tokens=False)]

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        out = bytearray()
        for i in ids:
            piece = self.tok.id_to_token(int(i))
            if piece is None:
                continue
            if self._bytes is not None and all(ch in self._bytes for ch in piece):
                out.extend(self._bytes[ch] for ch in piece)
            else:
                out.extend(self.tok.decode([int(i)], skip_special_tokens=False).encode("utf-8"))
        return bytes(out)

    def decode(self, ids: Iterable[int]) -> str:
        return self.decode_bytes(ids).decode("utf-8", errors="replace")


def tokenizer_json(path: str | os.PathLike) -> Path | None:
    """``path`` itself if it is a ``tokenizer.json`` file, ``path/tokenizer.json`` if that
    exists, else None."""
    p = Path(path).expanduser()
    if p.is_file() and p.suffix == ".json":
        return p
    if (p / "tokenizer.json").is_file():
        return p / "tokenizer.json"
    return None


def load_hf_tokenizer(path: str | os.PathLike) -> HFTokenizer:
    """The tokenizer in ``path`` (a ``tokenizer.json`` or a folder holding one).

    Raises:
        DataError: no tokenizer.json there, or an unreadable one (names the path).
    """
    found = tokenizer_json(path)
    if found is None:
        raise DataError(f"{path}: no tokenizer.json (a Hugging Face tokenizer folder holds one)")
    return HFTokenizer(found)


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether the Hugging Face Hub (``HF_ENDPOINT``, default huggingface.co) accepts a TCP
    connection within ``timeout_s`` — checked before a download, because huggingface_hub
    retries an unreachable host with backoff for half a minute. False when ``HF_HUB_OFFLINE``
    is set."""
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        with socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def hub_tokenizer_json(repo: str) -> Path | None:
    """``tokenizer.json`` of Hub repo ``repo`` from huggingface_hub's cache, downloading it
    when the Hub is reachable (:func:`hub_reachable`); None when it cannot be had."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        return None
    try:
        return Path(hf_hub_download(repo, "tokenizer.json", local_files_only=True))
    except Exception:
        pass
    if not hub_reachable():
        return None
    try:
        return Path(hf_hub_download(repo, "tokenizer.json"))
    except Exception:
        return None
