"""tui_lab.data: tokenizers, text sources and the token cache.

The GPT-2 and WikiText-2 tests use the offline copies in ../shared/data (marked
``needs_data``: skipped with the reason when absent); the rest run anywhere. Tokenizing
speed is measured by ``tui-lab bench`` (its ``tokenize`` figures), not here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import pytest

from tui_lab.config.schema import DataConfig
from tui_lab.data import DataError, load_tokenizer, load_tokens, split_texts
from tui_lab.data import cache as cache_mod
from tui_lab.data.sources import source_fingerprint

ROUND_TRIP = [
    "Hello world",
    "",
    " = Valkyria Chronicles III = \n",
    "naïve café, Straße, Ελληνικά, 東京, 🚀🦀 emoji 👩‍🔬",
    "tabs\tand  double  spaces\n\n\r\nend",
    "<|endoftext|> is plain text for ordinary encoding",
]


# --------------------------------------------------------------------------- tokenizers


@pytest.fixture
def gpt2(gpt2_dir):
    return load_tokenizer("gpt2", gpt2_dir)


@pytest.mark.needs_data
def test_gpt2_from_offline_files_is_the_exact_encoding(gpt2):
    assert gpt2.name == "gpt2" and gpt2.vocab_size == 50257 and gpt2.enc.n_vocab == 50257
    assert gpt2.eot_token == 50256
    assert gpt2.encode("Hello world") == [15496, 995]
    for text in ROUND_TRIP:
        assert gpt2.decode(gpt2.encode(text)) == text
        assert gpt2.decode_bytes(gpt2.encode(text)) == text.encode("utf-8")
    assert 50256 not in gpt2.encode("<|endoftext|>")  # ordinary: special-token text is just text
    assert gpt2.encode_batch(ROUND_TRIP, num_threads=2) == [gpt2.encode(t) for t in ROUND_TRIP]
    for text in ROUND_TRIP:
        assert gpt2.encode_array(text).tolist() == gpt2.encode(text)


@pytest.mark.needs_data
def test_gpt2_decode_bytes_keeps_a_cut_character(gpt2):
    ids = gpt2.encode("🚀")
    assert len(ids) > 1  # the emoji spans several byte-level tokens
    head = gpt2.decode_bytes(ids[:1])
    assert head + gpt2.decode_bytes(ids[1:]) == "🚀".encode("utf-8")
    assert "\ufffd" in gpt2.decode(ids[:1])  # decode replaces, decode_bytes does not


@pytest.mark.needs_data
def test_gpt2_files_are_read_in_place_not_copied_to_tiktokens_cache(gpt2_dir, tmp_path, monkeypatch):
    cache = tmp_path / "tiktoken-cache"
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    load_tokenizer("gpt2", gpt2_dir)
    assert not cache.exists()
    assert os.environ["TIKTOKEN_CACHE_DIR"] == str(cache)  # restored

    # unset: tiktoken would fall back to <tmp>/data-gym-cache; the variable stays unset
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR")
    monkeypatch.delenv("DATA_GYM_CACHE_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    load_tokenizer("gpt2", gpt2_dir)
    assert "TIKTOKEN_CACHE_DIR" not in os.environ
    assert not (tmp_path / "data-gym-cache").exists()


def test_byte_tokenizer_round_trips_non_ascii():
    tok = load_tokenizer("byte")
    assert (tok.name, tok.vocab_size, tok.eot_token) == ("byte", 256, None)
    for text in ROUND_TRIP:
        ids = tok.encode(text)
        assert ids == list(text.encode("utf-8")) and tok.decode(ids) == text
        assert tok.encode_array(text).tolist() == ids
    assert tok.encode_batch(["é", "x"], num_threads=2) == [[0xC3, 0xA9], [0x78]]
    assert tok.decode_bytes(tok.encode("é")[:1]) == b"\xc3"
    assert tok.decode(tok.encode("é")[:1]) == "\ufffd"


@pytest.mark.needs_data
def test_tokenizer_errors_name_the_path(tmp_path, gpt2_dir):
    with pytest.raises(DataError, match=rf"{tmp_path}.*missing vocab.bpe, encoder.json"):
        load_tokenizer("gpt2", tmp_path)
    absent = tmp_path / "no-such-bpe"
    with pytest.raises(DataError, match=rf"{absent}: no such folder"):
        load_tokenizer("gpt2", absent)
    other = tmp_path / "other-bpe"
    other.mkdir()
    (other / "vocab.bpe").write_bytes((gpt2_dir / "vocab.bpe").read_bytes())
    (other / "encoder.json").write_text('{"a": 0}')
    with pytest.raises(DataError, match=rf"{other}: encoder.json is not OpenAI's GPT-2 file"):
        load_tokenizer("gpt2", other)
    with pytest.raises(DataError, match="unknown tokenizer 'sentencepiece'"):
        load_tokenizer("sentencepiece")


def test_gpt2_without_files_offline_says_what_to_set(monkeypatch):
    import tiktoken

    def offline(name):
        raise ConnectionError("cannot reach openaipublic.blob.core.windows.net")

    monkeypatch.setattr(tiktoken, "get_encoding", offline)
    with pytest.raises(DataError, match=r"data\.tokenizer_path.*vocab\.bpe and encoder\.json.*TIKTOKEN_CACHE_DIR"):
        load_tokenizer("gpt2")


# --------------------------------------------------------------------------- sources


def make_corpus(root: Path, names=("train.txt", "valid.txt", "test.txt")) -> Path:
    folder = root / "corpus"
    folder.mkdir()
    texts = {
        "train": "the cat sat on the mat\n\n = Heading = \n" * 300,
        "validation": "a dog ran in the park today — naïve café\n" * 40,
        "test": "birds fly 🚀\n" * 25,
    }
    for name, split in zip(names, ("train", "validation", "test")):
        (folder / name).write_text(texts[split], encoding="utf-8")
    return folder


def test_local_folder_rows_keep_newlines_and_accept_wikitext_names(tmp_path):
    folder = make_corpus(tmp_path, names=("wiki.train.raw", "validation.txt", "wiki.test.tokens"))
    cfg = DataConfig(path=str(folder), tokenizer="byte")
    for split, name in (("train", "wiki.train.raw"), ("validation", "validation.txt"), ("test", "wiki.test.tokens")):
        rows = list(split_texts(cfg, split))
        assert len(rows) > 1 and all(r.endswith("\n") for r in rows)
        assert "".join(rows) == (folder / name).read_text(encoding="utf-8")


def test_missing_folder_or_split_file_names_the_path(tmp_path, tmp_cache):
    folder = tmp_path / "only-train"
    folder.mkdir()
    (folder / "train.txt").write_text("x\n")
    cfg = DataConfig(path=str(folder), tokenizer="byte")
    with pytest.raises(DataError, match=rf"{folder}: no test file \(looked for test.txt, wiki.test.raw"):
        list(split_texts(cfg, "test"))
    with pytest.raises(DataError, match=rf"{folder}: no validation file .*valid.txt, validation.txt"):
        load_tokens(cfg, "validation", load_tokenizer("byte"))
    absent = tmp_path / "absent"
    with pytest.raises(DataError, match=rf"{absent}: no such folder"):
        list(split_texts(DataConfig(path=str(absent), tokenizer="byte"), "train"))
    with pytest.raises(DataError, match="unknown split 'dev'"):
        list(split_texts(cfg, "dev"))


def test_pydoc_splits_share_no_topic_and_no_paragraph():
    from pydoc_data.topics import topics

    cfg = DataConfig(dataset="pydoc", tokenizer="byte")
    splits = {s: list(split_texts(cfg, s)) for s in ("train", "validation", "test")}
    assert all(splits.values())
    assert splits == {s: list(split_texts(cfg, s)) for s in splits}  # deterministic
    texts = {v.rstrip("\n") for v in topics.values()}
    assert all(row.rstrip("\n") in texts for row in splits["train"])  # training rows are whole topics
    paragraphs = {s: {p.strip() for row in rows for p in row.split("\n\n") if p.strip()} for s, rows in splits.items()}
    assert not paragraphs["train"] & paragraphs["validation"]
    assert not paragraphs["train"] & paragraphs["test"]
    assert not paragraphs["validation"] & paragraphs["test"]
    chars = {s: sum(map(len, rows)) for s, rows in splits.items()}
    assert chars["train"] > 5 * chars["validation"] > 0 and chars["test"] > 0


def _fake_datasets(monkeypatch, load_dataset):
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))


def test_hub_failure_names_dataset_config_and_the_offline_hint(monkeypatch):
    def load_dataset(name, config, split):
        raise ConnectionError("Couldn't reach 'Salesforce/wikitext' on the Hub (LocalEntryNotFoundError)")

    _fake_datasets(monkeypatch, load_dataset)
    cfg = DataConfig(dataset="Salesforce/wikitext", config="wikitext-103-raw-v1", tokenizer="gpt2")
    with pytest.raises(DataError, match=r"'Salesforce/wikitext' config 'wikitext-103-raw-v1'.*data\.path"):
        list(split_texts(cfg, "train"))


def test_hub_rows_are_the_text_column(monkeypatch):
    class FakeSplit:
        column_names = ["text"]

        def iter(self, batch_size):
            yield {"text": ["one\n", "two\n"]}
            yield {"text": ["three\n"]}

    seen = []
    _fake_datasets(monkeypatch, lambda name, config, split: seen.append((name, config, split)) or FakeSplit())
    cfg = DataConfig(dataset="some/corpus", config="v1", tokenizer="byte")
    assert list(split_texts(cfg, "validation")) == ["one\n", "two\n", "three\n"]
    assert seen == [("some/corpus", "v1", "validation")]


def test_source_fingerprints(tmp_path):
    folder = make_corpus(tmp_path)
    cfg = DataConfig(path=str(folder), tokenizer="byte")
    before = source_fingerprint(cfg, "train")
    assert str((folder / "train.txt").resolve()) in before
    (folder / "train.txt").write_text("changed\n")
    assert source_fingerprint(cfg, "train") != before
    hub = DataConfig(dataset="Salesforce/wikitext", config="wikitext-2-raw-v1", tokenizer="gpt2")
    assert source_fingerprint(hub, "test") != source_fingerprint(hub, "validation")
    assert "wikitext-2-raw-v1" in source_fingerprint(hub, "test")
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in source_fingerprint(
        DataConfig(dataset="pydoc", tokenizer="byte"), "train")


# --------------------------------------------------------------------------- token cache


def test_cache_miss_then_hit(tmp_path, tmp_cache):
    folder = make_corpus(tmp_path)
    cfg = DataConfig(path=str(folder), tokenizer="byte")
    tok = load_tokenizer("byte")
    text = (folder / "train.txt").read_text(encoding="utf-8")
    calls = []
    first = load_tokens(cfg, "train", tok, progress=lambda done, total: calls.append((done, total)))
    size = (folder / "train.txt").stat().st_size
    assert calls and calls[-1] == (size, size)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert first.n_tokens == len(text.encode()) == first.n_bytes
    assert first.n_words == len(text.split()) == 300 * 9
    assert isinstance(first.ids, np.memmap) and first.ids.dtype == np.uint16 and first.ids.ndim == 1
    assert not first.ids.flags.writeable
    assert bytes(np.asarray(first.ids, dtype=np.uint8)) == text.encode()
    assert first.path.parent == tmp_cache and first.path.suffix == ".bin"
    meta = json.loads(first.path.with_suffix(".json").read_text())
    assert meta["n_tokens"] == first.n_tokens and meta["n_words"] == first.n_words
    assert meta["n_bytes"] == first.n_bytes and meta["dtype"] == "uint16"
    assert meta["split"] == "train" and meta["tokenizer"] == "byte-v1" and meta["dataset"] == str(folder)
    assert sorted(p.name for p in tmp_cache.iterdir()) == sorted([first.path.name, first.path.stem + ".json"])

    mtime = first.path.stat().st_mtime_ns
    calls.clear()
    again = load_tokens(cfg, "train", tok, progress=lambda done, total: calls.append(done))
    assert calls == []  # nothing re-tokenized
    assert again.path == first.path and again.path.stat().st_mtime_ns == mtime
    assert np.array_equal(again.ids, first.ids) and again.n_words == first.n_words


def test_changed_source_invalidates_the_cache(tmp_path, tmp_cache):
    folder = make_corpus(tmp_path)
    cfg = DataConfig(path=str(folder), tokenizer="byte")
    tok = load_tokenizer("byte")
    old = load_tokens(cfg, "validation", tok)
    (folder / "valid.txt").write_text("new words here\n")
    new = load_tokens(cfg, "validation", tok)
    assert new.path != old.path
    assert (new.n_tokens, new.n_words) == (15, 3)


def test_corrupt_cache_is_rebuilt(tmp_path, tmp_cache):
    cfg = DataConfig(path=str(make_corpus(tmp_path)), tokenizer="byte")
    tok = load_tokenizer("byte")
    good = load_tokens(cfg, "test", tok)
    expected = np.array(good.ids)
    with open(good.path, "ab") as fh:  # size no longer matches the metadata
        fh.write(b"\0\0")
    assert np.array_equal(load_tokens(cfg, "test", tok).ids, expected)
    good.path.with_suffix(".json").write_text("{not json")
    calls = []
    rebuilt = load_tokens(cfg, "test", tok, progress=lambda d, t: calls.append(d))
    assert calls and np.array_equal(rebuilt.ids, expected)


def test_cache_dir_argument_wins_over_the_environment(tmp_path, tmp_cache):
    cfg = DataConfig(path=str(make_corpus(tmp_path)), tokenizer="byte")
    explicit = tmp_path / "explicit"
    arr = load_tokens(cfg, "test", load_tokenizer("byte"), cache_dir=explicit)
    assert arr.path.parent == explicit and not tmp_cache.exists()
    assert cache_mod.resolve_cache_dir() == tmp_cache


def test_chunked_tokenizing_equals_the_whole_text(tmp_path, tmp_cache, monkeypatch):
    monkeypatch.setattr(cache_mod, "CHUNK_CHARS", 100)  # many chunks, many in flight
    folder = make_corpus(tmp_path)
    cfg = DataConfig(path=str(folder), tokenizer="byte")
    arr = load_tokens(cfg, "train", load_tokenizer("byte"))
    assert bytes(np.asarray(arr.ids, dtype=np.uint8)) == (folder / "train.txt").read_bytes()


@pytest.mark.needs_data
def test_gpt2_cache_matches_direct_encoding(tmp_path, tmp_cache, gpt2):
    folder = make_corpus(tmp_path)
    cfg = DataConfig(path=str(folder), tokenizer="gpt2")
    arr = load_tokens(cfg, "validation", gpt2)
    assert arr.ids.dtype == np.uint16
    assert arr.ids.tolist() == gpt2.encode((folder / "valid.txt").read_text(encoding="utf-8"))


class WideTokenizer:
    """A stand-in with more than 65,536 ids and only the basic protocol (no encode_array)."""

    name = "wide"
    vocab_size = 100_000
    eot_token = None
    fingerprint = "wide-test"

    def encode(self, text):
        return [70_000 + ord(c) for c in text]

    def encode_batch(self, texts, num_threads=1):
        return [self.encode(t) for t in texts]


def test_large_vocabularies_use_uint32(tmp_path, tmp_cache):
    folder = make_corpus(tmp_path)
    arr = load_tokens(DataConfig(path=str(folder), tokenizer="byte"), "test", WideTokenizer())
    assert arr.ids.dtype == np.uint32
    assert arr.ids.tolist() == WideTokenizer().encode((folder / "test.txt").read_text(encoding="utf-8"))


def test_empty_split_is_an_error(tmp_path, tmp_cache):
    folder = make_corpus(tmp_path)
    (folder / "test.txt").write_text("")
    with pytest.raises(DataError, match="test split .* is empty"):
        load_tokens(DataConfig(path=str(folder), tokenizer="byte"), "test", load_tokenizer("byte"))
    assert not any(tmp_cache.iterdir())  # no half-written files left behind


def test_data_package_does_not_import_torch():
    code = ("import sys, tui_lab.data, tui_lab.data.cache, tui_lab.data.sources, tui_lab.data.tokenizers; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1]).returncode == 0


# --------------------------------------------------------------------------- WikiText-2


@pytest.mark.needs_data
def test_wikitext2_validation_counts(wikitext2_dir, gpt2, tmp_cache):
    cfg = DataConfig(path=str(wikitext2_dir), tokenizer="gpt2")
    arr = load_tokens(cfg, "validation", gpt2)
    assert abs(arr.n_tokens - 258_659) <= 2_587  # within 1 % of the whole-file count in the README
    assert arr.n_words == 213_886
    assert arr.n_bytes == 1_121_681
    assert int(arr.ids.max()) < 50257


@pytest.mark.slow
@pytest.mark.needs_data
def test_wikitext2_train_split_counts_and_cache_reload(wikitext2_dir, gpt2, tmp_cache):
    """The whole WikiText-2 train split tokenizes to its word count, and the cached copy reloads
    to the same tokens."""
    cfg = DataConfig(path=str(wikitext2_dir), tokenizer="gpt2")
    first = load_tokens(cfg, "train", gpt2)
    again = load_tokens(cfg, "train", gpt2)
    assert again.n_tokens == first.n_tokens and first.n_words == 2_051_910
    assert (again.ids[:1000] == first.ids[:1000]).all() and (again.ids[-1000:] == first.ids[-1000:]).all()


def test_seed_protocol_on_raw_validation_gives_the_seed_logs_token_count(tmp_path, shared_data):
    """The seed logs say "Val tokens: 242,643": rows stripped, empty ones dropped, each row
    encoded alone, ids concatenated. The whole file encoded as one text gives 249,887."""
    from tui_lab.data.cache import cached_token_counts

    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "wiki.valid.raw").symlink_to(shared_data / "wikitext-2-raw" / "wiki.valid.raw")
    tok = load_tokenizer("gpt2", str(shared_data / "gpt2"))
    seed = DataConfig(path=str(folder), join="strip-lines")
    whole = DataConfig(path=str(folder))
    seed_ids = load_tokens(seed, "validation", tok, cache_dir=tmp_path / "c")
    assert seed_ids.n_tokens == 242_643
    assert load_tokens(whole, "validation", tok, cache_dir=tmp_path / "c").n_tokens == 249_887
    # two protocols, two cache entries: neither reads the other's ids
    assert cached_token_counts(seed, "validation", tmp_path / "c")["n_tokens"] == 242_643
    assert cached_token_counts(whole, "validation", tmp_path / "c")["n_tokens"] == 249_887
    # stripped rows hold no newline tokens, and the words are those of the rows
    assert tok.encode("\n")[0] not in set(np.asarray(seed_ids.ids[:5000]).tolist())
    rows = [r.strip() for r in (shared_data / "wikitext-2-raw" / "wiki.valid.raw").read_text("utf-8").splitlines()]
    assert seed_ids.n_words == sum(len(r.split()) for r in rows if r)
