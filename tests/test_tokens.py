"""Tokenizers, text sources and the token cache, on the real GPT-2 BPE and WikiText-2."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tui_lab.config.schema import DataConfig
from tui_lab.data import DataError, cached_token_counts, load_tokenizer, load_tokens, split_texts

TEXTS = ["Hello world", " = Valkyria Chronicles III = \n", "naïve café — 東京 🚀", "", "a  b\n\n\tc"]


def test_gpt2_from_local_files_is_the_exact_encoding(gpt2_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken-cache"))
    tok = load_tokenizer("gpt2", gpt2_dir)
    assert tok.vocab_size == 50257 and tok.eot_token == 50256
    assert tok.encode("Hello world") == [15496, 995]
    for text in TEXTS:
        assert tok.decode(tok.encode(text)) == text
    assert not (tmp_path / "tiktoken-cache").exists()  # the local files were read in place
    assert os.environ["TIKTOKEN_CACHE_DIR"] == str(tmp_path / "tiktoken-cache")


def test_byte_tokenizer_round_trips_unicode():
    tok = load_tokenizer("byte")
    for text in TEXTS:
        ids = tok.encode(text)
        assert all(0 <= i < 256 for i in ids) and tok.decode(ids) == text
    assert tok.decode_bytes(tok.encode("é")[:1]) == b"\xc3"  # half a character stays bytes


def test_bad_tokenizer_inputs(tmp_path):
    with pytest.raises(DataError, match="missing vocab.bpe, encoder.json"):
        load_tokenizer("gpt2", tmp_path)
    with pytest.raises(DataError, match="unknown tokenizer"):
        load_tokenizer("sentencepiece")


def make_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "train.txt").write_text("the cat sat on the mat\n" * 200)
    (folder / "valid.txt").write_text("a dog ran in the park today\n" * 50)
    (folder / "test.txt").write_text("birds fly\n" * 20)
    return folder


def test_cache_hit_returns_the_same_ids_without_tokenizing(tmp_path, tmp_cache):
    cfg = DataConfig(path=str(make_folder(tmp_path)), tokenizer="byte")
    tok = load_tokenizer("byte")
    calls = []
    first = load_tokens(cfg, "train", tok, progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1] == (200 * 23, 200 * 23)
    assert first.n_tokens == 200 * 23 and first.n_words == 200 * 6
    calls.clear()
    again = load_tokens(cfg, "train", tok, progress=lambda done, total: calls.append(done))
    assert calls == [] and np.array_equal(np.asarray(first.ids), np.asarray(again.ids))
    assert cached_token_counts(cfg, "train")["n_tokens"] == 200 * 23
    assert bytes(np.asarray(again.ids[:8], dtype=np.uint8)) == b"the cat "


def test_changed_source_invalidates_the_cache(tmp_path, tmp_cache):
    folder = make_folder(tmp_path)
    cfg = DataConfig(path=str(folder), tokenizer="byte")
    tok = load_tokenizer("byte")
    assert load_tokens(cfg, "validation", tok).n_tokens == 50 * 28
    (folder / "valid.txt").write_text("short\n")
    assert load_tokens(cfg, "validation", tok).n_tokens == 6


def test_truncated_cache_file_is_rebuilt(tmp_path, tmp_cache):
    cfg = DataConfig(path=str(make_folder(tmp_path)), tokenizer="byte")
    tok = load_tokenizer("byte")
    arr = load_tokens(cfg, "test", tok)
    with open(arr.path, "r+b") as fh:
        fh.truncate(10)
    assert load_tokens(cfg, "test", tok).n_tokens == 200


def test_missing_split_names_the_folder_and_the_names_tried(tmp_path):
    folder = tmp_path / "only-train"
    folder.mkdir()
    (folder / "train.txt").write_text("x\n")
    cfg = DataConfig(path=str(folder), tokenizer="byte")
    with pytest.raises(DataError, match=r"only-train: no validation file \(looked for valid.txt, validation.txt"):
        list(split_texts(cfg, "validation"))
    with pytest.raises(DataError, match="no such folder"):
        list(split_texts(DataConfig(path=str(tmp_path / "absent"), tokenizer="byte"), "train"))


def test_pydoc_splits_are_disjoint_documents():
    cfg = DataConfig(dataset="pydoc", tokenizer="byte")
    splits = {s: list(split_texts(cfg, s)) for s in ("train", "validation", "test")}
    assert all(splits.values())
    assert len(splits["train"]) > 5 * len(splits["validation"])
    seen = set()
    for rows in splits.values():
        assert not seen & set(rows)
        seen |= set(rows)


def test_wikitext2_validation_matches_the_published_counts(wikitext2_dir, gpt2_dir, tmp_cache):
    cfg = DataConfig(path=str(wikitext2_dir), tokenizer="gpt2", tokenizer_path=str(gpt2_dir))
    arr = load_tokens(cfg, "validation", load_tokenizer("gpt2", gpt2_dir))
    assert arr.n_tokens == 258_659  # ../shared/data/README.md: GPT-2 tokens of the whole file
    assert arr.n_words == 213_886
    assert arr.ids.dtype == np.uint16 and int(np.asarray(arr.ids).max()) < 50257


def test_hub_dataset_offline_gives_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    cfg = DataConfig(dataset="Salesforce/wikitext", config="wikitext-2-raw-v1", tokenizer="gpt2")
    with pytest.raises(DataError, match="Salesforce/wikitext.*data.path"):
        list(split_texts(cfg, "validation"))
