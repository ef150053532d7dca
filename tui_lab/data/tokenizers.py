"""Tokenizers: the exact GPT-2 BPE through tiktoken, and a byte-level one for the offline demo."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable, Protocol

import numpy as np

from . import DataError

GPT2_FILES = ("vocab.bpe", "encoder.json")
GPT2_SHA256 = {  # the hashes tiktoken pins for its "gpt2" encoding (OpenAI's gpt-2 encodings/main)
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
}


class Tokenizer(Protocol):
    """What the data pipeline, the trainer and the chat engine use of a tokenizer.

    ``encode`` is ordinary encoding: special-token text such as ``<|endoftext|>`` is
    encoded as plain text. ``decode`` replaces invalid UTF-8 (a cut multi-byte
    character) with U+FFFD; streaming decoders use ``decode_bytes`` and decode
    complete characters themselves. ``fingerprint`` names the exact id mapping (for
    cache keys). Implementations may also offer ``encode_array(text) -> np.ndarray``
    (unsigned ints, no Python int list), which the token cache prefers.
    """

    name: str
    vocab_size: int
    eot_token: int | None
    fingerprint: str

    def encode(self, text: str) -> list[int]: ...
    def encode_batch(self, texts: list[str], num_threads: int = 8) -> list[list[int]]: ...
    def decode(self, ids: Iterable[int]) -> str: ...
    def decode_bytes(self, ids: Iterable[int]) -> bytes: ...


class ByteTokenizer:
    """UTF-8 bytes as tokens: vocabulary 256, no special tokens, nothing to download."""

    name = "byte"
    vocab_size = 256
    eot_token = None
    fingerprint = "byte-v1"

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def encode_batch(self, texts: list[str], num_threads: int = 8) -> list[list[int]]:
        return [list(t.encode("utf-8")) for t in texts]

    def encode_array(self, text: str) -> np.ndarray:
        """The UTF-8 bytes of ``text`` as a uint8 array (one token per byte)."""
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        return bytes(int(i) & 0xFF for i in ids)

    def decode(self, ids: Iterable[int]) -> str:
        return self.decode_bytes(ids).decode("utf-8", errors="replace")


class TiktokenTokenizer:
    """A tiktoken ``Encoding`` (here: GPT-2's r50k BPE, 50,257 tokens, ``<|endoftext|>`` = 50256)."""

    def __init__(self, enc, fingerprint: str):
        self.enc = enc
        self.name = enc.name
        self.vocab_size = enc.n_vocab
        self.eot_token = enc.eot_token
        self.fingerprint = fingerprint

    def encode(self, text: str) -> list[int]:
        return self.enc.encode_ordinary(text)

    def encode_batch(self, texts: list[str], num_threads: int = 8) -> list[list[int]]:
        return self.enc.encode_ordinary_batch(texts, num_threads=num_threads)

    def encode_array(self, text: str) -> np.ndarray:
        """``encode(text)`` as a uint32 array, straight from tiktoken's Rust buffer (no Python
        ints). Releases the GIL while encoding, so threads encode in parallel."""
        core = getattr(self.enc, "_core_bpe", None)
        if core is not None and hasattr(core, "encode_to_tiktoken_buffer"):
            # the core's encode with no allowed special tokens is ordinary encoding
            return np.frombuffer(core.encode_to_tiktoken_buffer(text, set()), dtype=np.uint32)
        return np.asarray(self.enc.encode_ordinary(text), dtype=np.uint32)

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        return self.enc.decode_bytes([int(i) for i in ids])

    def decode(self, ids: Iterable[int]) -> str:
        return self.enc.decode([int(i) for i in ids], errors="replace")


def _gpt2_from_files(folder: Path) -> TiktokenTokenizer:
    if not folder.is_dir():
        raise DataError(f"data.tokenizer_path {folder}: no such folder "
                        "(a GPT-2 BPE folder holds vocab.bpe and encoder.json)")
    missing = [f for f in GPT2_FILES if not (folder / f).is_file()]
    if missing:
        raise DataError(f"data.tokenizer_path {folder}: missing {', '.join(missing)} "
                        "(a GPT-2 BPE folder holds vocab.bpe and encoder.json)")
    for name, want in GPT2_SHA256.items():  # tiktoken skips its own hash check when not caching
        try:
            got = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        except OSError as exc:
            raise DataError(f"data.tokenizer_path {folder}: cannot read {name}: {exc.strerror or exc}") from None
        if got != want:
            raise DataError(f"data.tokenizer_path {folder}: {name} is not OpenAI's GPT-2 file "
                            f"(sha256 {got[:12]}…, expected {want[:12]}…)")
    import tiktoken
    import tiktoken.load
    from tiktoken_ext.openai_public import r50k_pat_str

    saved = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = ""  # read the local files in place: no copy into tiktoken's cache
    try:
        ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(
            vocab_bpe_file=str(folder / "vocab.bpe"), encoder_json_file=str(folder / "encoder.json"))
    except Exception as exc:  # tiktoken raises plain ValueError/KeyError/JSON errors on bad files
        raise DataError(f"data.tokenizer_path {folder}: unreadable GPT-2 BPE files: {exc}") from None
    finally:
        if saved is None:
            os.environ.pop("TIKTOKEN_CACHE_DIR", None)
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = saved
    enc = tiktoken.Encoding(name="gpt2", pat_str=r50k_pat_str, mergeable_ranks=ranks,
                            special_tokens={"<|endoftext|>": 50256}, explicit_n_vocab=50257)
    return TiktokenTokenizer(enc, "gpt2-r50k")


def load_tokenizer(name: str, path: str | os.PathLike | None = None) -> Tokenizer:
    """The tokenizer ``name``: ``gpt2``, ``byte`` or ``hf`` (a Hugging Face ``tokenizer.json``
    at ``path``, for foreign checkpoints; see :mod:`.hf_tokenizer`).

    ``gpt2`` is the exact GPT-2 BPE (50,257 ids, ``eot_token`` 50256). With ``path``: a
    folder holding OpenAI's ``vocab.bpe`` + ``encoder.json`` (checked against their
    published SHA-256), read in place — nothing is written to tiktoken's cache. Without
    ``path``: ``tiktoken.get_encoding("gpt2")``, which downloads once or reads files
    seeded in ``TIKTOKEN_CACHE_DIR``. ``byte``: the 256 UTF-8 byte values, no ``eot_token``.

    Raises:
        DataError: unknown name; ``path`` missing, incomplete or holding other files
            (the message names the folder); or tiktoken could not get the encoding
            (offline with no seeded cache; the message says what to set).
    """
    if name == "byte":
        return ByteTokenizer()
    if name == "hf":  # a Hugging Face tokenizer.json (foreign checkpoints: exp7, Hub GPT-2 folders)
        from .hf_tokenizer import load_hf_tokenizer

        if not path:
            raise DataError("tokenizer hf: needs the path of a tokenizer.json (or a folder holding one)")
        return load_hf_tokenizer(path)
    if name != "gpt2":
        raise DataError(f"unknown tokenizer {name!r} (known: gpt2, byte, hf)")
    if path:
        return _gpt2_from_files(Path(path).expanduser())
    import tiktoken

    try:
        enc = tiktoken.get_encoding("gpt2")
    except Exception as exc:
        raise DataError(
            "tokenizer gpt2: tiktoken could not load its files "
            f"({type(exc).__name__}: {str(exc)[:160]}); offline, set data.tokenizer_path to a folder "
            "with vocab.bpe and encoder.json (e.g. --set data.tokenizer_path=../shared/data/gpt2) "
            "or seed TIKTOKEN_CACHE_DIR") from None
    return TiktokenTokenizer(enc, "gpt2-r50k")
