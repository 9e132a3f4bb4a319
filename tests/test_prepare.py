"""Tests for corpora larger than memory: streamed chunks that tokenize as the whole text does
(gpt.text_chunks), token files (gpt.token_files), ``python -m gpt prepare``, ``pretrain --data`` and
``evaluate --data``, and a subprocess check that memory stays bounded as the corpus grows."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st

from gpt.corpus import load_texts
from gpt.text_chunks import NoCutError, NotUTF8Error, cut_chunks, read_texts
from gpt.token_files import (
    is_validation_chunk, open_token_files, prepare_token_files, token_dtype,
)
from gpt.tokenizer import BPETokenizer
from tests.cli_helpers import check_one_line_error, interrupt_at, run_cli, subprocess_env, weights

SPECIALS = ["<|endoftext|>", "<|a\nb|>"]  # the second one holds a line break: it can straddle a cut
TRAINING_TEXT = ("Hello there \nthe cat's 12 sat! \n\n  on a mat \n\tok \u00e9t\u00e9 <|endoftext|> It's 2024, isn't it?\n"
                 "  indented line\r\nwith  spaces \u00a0 and \u4e00\u4e8c\n") * 40
TINY = ["--config", "tiny", "--context-length", "16", "--emb-dim", "32", "--batch-size", "2", "--eval-batches", "2",
        "--warmup", "2"]


@pytest.fixture(scope="module")
def tokenizer():
    tok = BPETokenizer.train(TRAINING_TEXT, 310, special_tokens=SPECIALS, verbose=False)
    assert tok.encode(" \n") == [tok.encode(" \n")[0]]           # one token: the cut test below needs it
    return tok


def encode_chunks(tokenizer, chunks):
    return [i for c in chunks for i in tokenizer.encode(c, allowed_special="all")]


def pieces_of(text, sizes):
    """``text`` cut at arbitrary places into (piece, position) pairs, as read_texts yields them."""
    out, at, k = [], 0, 0
    while at < len(text):
        size = sizes[k % len(sizes)]
        out.append((text[at:at + size], at + size))
        at, k = at + size, k + 1
    return out


# --------------------------------------------------------------------------------------------------
# Chunks: cut only where the ids do not change
# --------------------------------------------------------------------------------------------------

ATOMS = ["a", "bc", "Z", "7", " ", "  ", "\n", "\n\n", "\t", "'s", "'t", "!", "?!", "\u00e9", "\u00a0", "\u3000",
         "\x1c", "\u4e00", "\U0001f600", "<|endoftext|>", "<|a\nb|>", "<|a", "b|>", " cat", "\n ", " \n",
         # paragraphs, blank lines and other whitespace before text: the places the rule cuts most
         "\n\nY", "Para one.\n\n", "\n\n\nZ", " \n\nx", "\t\tq", "\r\nw", "\u3000\u3000k", "\u00a0v",
         "\u2028u", "  \n<|endoftext|>", "\n\n<|endoftext|>"]


@given(st.lists(st.sampled_from(ATOMS), max_size=80), st.lists(st.integers(1, 9), min_size=1, max_size=5),
       st.integers(1, 12))
def test_chunked_ids_equal_the_ids_of_the_whole_text(tokenizer, atoms, sizes, chunk_chars):
    text = "".join(atoms)
    chunks = [c for c, _ in cut_chunks(pieces_of(text, sizes), chunk_chars, tokenizer.special_tokens)]
    assert "".join(chunks) == text
    assert all(chunks)
    assert encode_chunks(tokenizer, chunks) == tokenizer.encode(text, allowed_special="all")


def test_the_cut_rule_is_tight_enough_to_matter(tokenizer):
    # cutting after every line break would change the ids: "a \nb" pre-splits as "a", " ", "\n", "b"
    # in the whole text but as "a", " \n" when the text ends after the line break; the rule cuts
    # before the line break instead
    text = "a \nb"
    assert encode_chunks(tokenizer, ["a \n", "b"]) != tokenizer.encode(text)
    assert [c for c, _ in cut_chunks([(text, 4)], 1)] == ["a ", "\nb"]
    assert [c for c, _ in cut_chunks([("ab\ncd\nef", 8)], 1)] == ["ab", "\ncd", "\nef"]
    # never before a space: " b" is one piece
    assert [c for c, _ in cut_chunks([("a  b", 4)], 1)] == ["a  b"]
    # before a special token, the whitespace run in front of the line break stays whole: "  \n" is
    # one piece at the end of the text before <|endoftext|>
    text = "a  \n<|endoftext|>b"
    assert encode_chunks(tokenizer, ["a  ", "\n<|endoftext|>b"]) != tokenizer.encode(text, allowed_special="all")
    assert [c for c, _ in cut_chunks([(text, 99)], 1, tokenizer.special_tokens)] == [text]


def test_paragraphs_separated_by_blank_lines_are_cut_between_them(tokenizer):
    # one paragraph per line and a blank line between them (Wikipedia dumps, unwrapped books,
    # Markdown): no line break has a non-space on both sides, yet every "\n\n" is a cut point
    paragraph = "It was a dark and stormy night; the rain fell in torrents. " * 9
    text = "\n\n".join(paragraph + str(k) for k in range(600))                           # about 320 KB
    chunks = [c for c, _ in cut_chunks(pieces_of(text, [65536]), 256)]
    assert "".join(chunks) == text
    assert len(chunks) == 600 and max(map(len, chunks)) <= len(paragraph) + 10      # one per paragraph
    assert chunks[1].startswith("\n" + paragraph)
    sample = text[:5000]
    assert encode_chunks(tokenizer, [c for c, _ in cut_chunks([(sample, 1)], 100)]) == tokenizer.encode(sample)


def test_a_long_stretch_without_a_cut_point_makes_one_bigger_chunk(tokenizer):
    stretch = "word " * 3000 + "   " + "x" * 500          # no whitespace but spaces before a non-space
    text = "start\n" + stretch + "\nend\nmore"
    chunks = [c for c, _ in cut_chunks(pieces_of(text, [7, 100]), 3)]
    assert chunks == ["start", "\n" + stretch, "\nend", "\nmore"]
    assert encode_chunks(tokenizer, chunks) == tokenizer.encode(text)


def test_a_stretch_without_a_cut_point_longer_than_the_bound_is_an_error():
    text = "line\n" + "word " * 400 + "\nend"
    with pytest.raises(NoCutError, match="no line break") as err:
        list(cut_chunks(pieces_of(text, [100]), 10, max_chars=1000))
    assert 1000 <= err.value.position <= 1200
    assert [c for c, _ in cut_chunks(pieces_of(text, [100]), 10, max_chars=3000)] == [text[:-4], "\nend"]


def test_a_special_token_holding_a_line_break_is_never_cut(tokenizer):
    text = "x<|a\nb|>y\n" + "z" * 20   # (a cut is taken once len(special) characters after it are known)
    chunks = [c for c, _ in cut_chunks(pieces_of(text, [1]), 1, tokenizer.special_tokens)]
    assert chunks == ["x<|a\nb|>y", "\n" + "z" * 20]
    assert encode_chunks(tokenizer, chunks) == tokenizer.encode(text, allowed_special="all")


def test_a_chunk_ending_before_a_piece_reports_the_position_of_the_piece_it_drew_from():
    # the cut before "\nb" is only known once "b" is read, so the chunk "aaaa" ends before piece 2
    chunks = list(cut_chunks([("aaaa", 10), ("\n", 20), ("b", 30)], 1))
    assert chunks == [("aaaa", 10), ("\nb", 30)]


# --------------------------------------------------------------------------------------------------
# Reading files: the text of load_texts, a piece at a time
# --------------------------------------------------------------------------------------------------


@given(st.lists(st.text(st.sampled_from("ab \n\r\u00e9\u4e00\U0001f600\ufeff"), min_size=1, max_size=30)
                .filter(lambda t: t.replace("\ufeff", "").strip()), min_size=1, max_size=3),
       st.lists(st.booleans(), min_size=3, max_size=3), st.integers(1, 7))
def test_read_texts_joins_to_load_texts(contents, boms, read_bytes):
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for k, text in enumerate(contents):
            path = Path(tmp) / f"f{k}.txt"
            path.write_bytes((b"\xef\xbb\xbf" if boms[k] else b"") + text.encode("utf-8"))
            paths.append(path)
        pieces = list(read_texts(paths, read_bytes))
        assert "".join(p for p, _ in pieces) == load_texts(paths)
        assert pieces[-1][1] == sum(p.stat().st_size for p in paths)


@given(st.binary(max_size=40), st.binary(min_size=1, max_size=3), st.binary(max_size=10), st.integers(1, 6))
def test_a_bad_byte_is_reported_at_its_offset_in_the_file(before, bad, after, read_bytes):
    data = "\u00e9t\u00e9 ok\n".encode() + before + bad + after
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        expected = e.start
    else:
        return                                              # happened to be valid UTF-8
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bad.txt"
        path.write_bytes(data)
        with pytest.raises(NotUTF8Error) as err:
            list(read_texts([path], read_bytes))
    assert err.value.offset == expected and err.value.byte == data[expected]


# --------------------------------------------------------------------------------------------------
# Token files
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Three small files with CRLF line ends, a byte-order mark, special tokens and non-ASCII text."""
    folder = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    words = np.array("the cat sat on a mat It's 2024 caf\u00e9 \u4e00\u4e8c <|endoftext|> ! ,".split())
    paths = []
    for k, newline in enumerate(["\n", "\r\n", "\n"]):
        lines = [" ".join(rng.choice(words, size=rng.integers(1, 9))) for _ in range(150)]
        path = folder / f"doc{k}.txt"
        path.write_bytes((b"\xef\xbb\xbf" if k == 1 else b"") + newline.join(lines).encode("utf-8"))
        paths.append(path)
    return paths


def reassemble(folder, paths, tokenizer):
    """The ids of train.bin and val.bin put back in chunk order, using the rule of is_validation_chunk."""
    tf = open_token_files(folder)
    files = {s: tf.tokens(s).astype(np.int64).tolist() for s in ("train", "val")}
    at = {"train": 0, "val": 0}
    ids = []
    chunks = cut_chunks(read_texts(paths), tf.meta["chunk_chars"], tokenizer.special_tokens)
    for i, (chunk, _) in enumerate(chunks):
        split = "val" if is_validation_chunk(i, tf.meta["val_fraction"]) else "train"
        n = len(tokenizer.encode(chunk, allowed_special="all"))
        ids += files[split][at[split]:at[split] + n]
        at[split] += n
    assert at == {s: len(files[s]) for s in files}
    return ids


@pytest.mark.parametrize("chunk_chars", [1, 40, 1000, None])
def test_prepared_files_hold_the_ids_of_the_joined_text(tmp_path, corpus, tokenizer, chunk_chars):
    meta = prepare_token_files(corpus, tokenizer, tmp_path / "d", chunk_chars=chunk_chars, read_bytes=97, workers=1)
    assert reassemble(tmp_path / "d", corpus, tokenizer) == tokenizer.encode(load_texts(corpus), allowed_special="all")
    assert meta["tokens"]["val"] > 0 and meta["chunks"]["val"] > 0


def test_with_no_validation_fraction_train_bin_is_the_whole_encoding(tmp_path, corpus, tokenizer):
    prepare_token_files(corpus, tokenizer, tmp_path, val_fraction=0, chunk_chars=50, workers=1)
    tf = open_token_files(tmp_path)
    assert tf.tokens("train").tolist() == tokenizer.encode(load_texts(corpus), allowed_special="all")
    assert len(tf.tokens("val")) == 0 and (tmp_path / "val.bin").stat().st_size == 0


def test_one_and_two_workers_write_identical_files(tmp_path, corpus):
    for w in (1, 2):
        code, stdout, stderr = run_cli("prepare", "--text", *corpus, "--vocab-size", "300", "--out", tmp_path / f"w{w}",
                                       "--workers", w, "--chunk-chars", 64)
        assert code == 0, stderr
        assert re.search(r"prepared [\d,]+ tokens .* MB/s: .*train\.bin, .*val\.bin, .*meta\.json", stdout)
    for name in ("train.bin", "val.bin", "tokenizer.txt"):
        assert (tmp_path / "w1" / name).read_bytes() == (tmp_path / "w2" / name).read_bytes(), name
    a, b = (json.loads((tmp_path / w / "meta.json").read_text()) for w in ("w1", "w2"))
    assert a == b


def test_validation_takes_every_tenth_chunk_starting_halfway():
    assert [i for i in range(40) if is_validation_chunk(i, 0.1)] == [4, 14, 24, 34]
    assert sum(is_validation_chunk(i, 0.25) for i in range(1000)) == 250
    assert not any(is_validation_chunk(i, 0.0) for i in range(100))


def test_ids_are_uint16_up_to_65536_ids_and_uint32_beyond(tmp_path, corpus, tokenizer):
    assert token_dtype(65536) == np.uint16 and token_dtype(65537) == np.uint32
    big = BPETokenizer([tuple(m) for m in tokenizer.merges], {"<|endoftext|>": 70000})   # 70,001 ids
    meta = prepare_token_files(corpus, big, tmp_path, chunk_chars=200, workers=1)
    assert meta["dtype"] == "uint32" and meta["n_vocab"] == 70001
    ids = reassemble(tmp_path, corpus, big)
    assert ids == big.encode(load_texts(corpus), allowed_special="all") and 70000 in ids
    assert (tmp_path / "train.bin").stat().st_size == 4 * meta["tokens"]["train"]
    small = prepare_token_files(corpus, tokenizer, tmp_path / "small", workers=1)
    assert small["dtype"] == "uint16"
    assert (tmp_path / "small" / "train.bin").stat().st_size == 2 * small["tokens"]["train"]


def test_meta_describes_the_files(tmp_path, corpus, tokenizer):
    meta = prepare_token_files(corpus, tokenizer, tmp_path / "a", val_fraction=0.2, chunk_chars=100, workers=1)
    assert meta == json.loads((tmp_path / "a" / "meta.json").read_text())
    assert meta["format"] == "gpt-token-files v1" and meta["val_fraction"] == 0.2 and meta["chunk_chars"] == 100
    assert meta["sources"] == [{"path": str(p.resolve()), "bytes": p.stat().st_size} for p in corpus]
    assert meta["n_vocab"] == tokenizer.n_vocab and meta["special_tokens"] == "all"
    for split in ("train", "val"):
        assert meta["tokens"][split] == (tmp_path / "a" / f"{split}.bin").stat().st_size // 2
    assert BPETokenizer.load(tmp_path / "a" / "tokenizer.txt").merges == tokenizer.merges
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["meta.json", "tokenizer.txt", "train.bin", "val.bin"]
    # the fingerprint follows the content: the same data gives the same one, other data another
    again = prepare_token_files(corpus, tokenizer, tmp_path / "b", val_fraction=0.2, chunk_chars=100, workers=1)
    other = prepare_token_files(corpus[:2], tokenizer, tmp_path / "c", val_fraction=0.2, chunk_chars=100, workers=1)
    assert again["fingerprint"] == meta["fingerprint"] != other["fingerprint"]


def test_paragraph_per_line_text_is_prepared_in_many_small_chunks(tmp_path, tokenizer):
    # a few hundred KB with one paragraph per line and blank lines between them: the chunks (and so
    # what is held and encoded at once) stay near chunk_chars, and there is a validation split
    rng = np.random.default_rng(1)
    words = np.array("the cat sat on a mat and it rained all day long".split())
    paragraphs = [" ".join(rng.choice(words, size=rng.integers(20, 120))).capitalize() + "." for _ in range(900)]
    (tmp_path / "wiki.txt").write_text("\n\n".join(paragraphs) + "\n")
    meta = prepare_token_files([tmp_path / "wiki.txt"], tokenizer, tmp_path / "d", chunk_chars=1000, workers=1)
    size = (tmp_path / "wiki.txt").stat().st_size
    assert size > 200_000 and meta["chunks"]["train"] + meta["chunks"]["val"] >= size // 2000
    assert meta["chunks"]["val"] > 10
    assert reassemble(tmp_path / "d", [tmp_path / "wiki.txt"], tokenizer) == tokenizer.encode(
        (tmp_path / "wiki.txt").read_text(), allowed_special="all")


def test_text_without_a_cut_point_for_too_long_is_refused_naming_the_file(tmp_path, corpus, tokenizer):
    (tmp_path / "one-line.txt").write_text("intro\n" + "word " * 2000 + "\nend\n")
    with pytest.raises(ValueError, match=r"one-line\.txt has no line break .* in 5,000 characters"):
        prepare_token_files([corpus[0], tmp_path / "one-line.txt"], tokenizer, tmp_path / "d", chunk_chars=100,
                            max_chars=5000, workers=1)
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["tokenizer.txt"]     # no .bin, no meta.json


def test_damaged_token_files_are_refused_with_one_line(tmp_path, corpus, tokenizer):
    prepare_token_files(corpus, tokenizer, tmp_path, chunk_chars=100, workers=1)
    with open(tmp_path / "val.bin", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match=r"val\.bin has [\d,]+ bytes but meta\.json promises"):
        open_token_files(tmp_path)
    (tmp_path / "meta.json").unlink()
    with pytest.raises(ValueError, match="no meta.json"):
        open_token_files(tmp_path)


# --------------------------------------------------------------------------------------------------
# python -m gpt prepare: bad input
# --------------------------------------------------------------------------------------------------


def test_a_file_that_is_not_utf8_is_refused_naming_the_file_and_the_offset(tmp_path):
    path = tmp_path / "latin1.txt"
    good = ("caf\u00e9 \u4e00 line\n" * 80000).encode()                # past the first 1 MB read
    path.write_bytes(good + "na\u00efve".encode("latin-1") + b"\n")
    code, _, stderr = run_cli("prepare", "--text", path, "--vocab-size", "300", "--out", tmp_path / "d",
                              "--tokenizer-sample-mb", "0.1")
    check_one_line_error(code, stderr, str(path), f"byte offset {len(good) + 2:,}", "0xef")
    assert not (tmp_path / "d" / "train.bin").exists()


@pytest.mark.parametrize("case", ["missing", "folder", "empty", "blank", "existing", "out-is-file", "fraction",
                                  "fraction-nan", "sample-inf", "tokenizer-folder", "tokenizer-pattern"])
def test_bad_input_is_a_one_line_error(tmp_path, corpus, tokenizer, case):
    out = tmp_path / "out"
    args = ["prepare", "--text", corpus[0], "--vocab-size", "300", "--out", out]
    expected = []
    if case == "missing":
        args[2], expected = tmp_path / "nope.txt", ["nope.txt", "not found"]
    elif case == "folder":
        args[2], expected = tmp_path, [str(tmp_path), "directory"]
    elif case in ("empty", "blank"):
        (tmp_path / "e.txt").write_text("" if case == "empty" else " \n\t\n")
        args[2:3], expected = [corpus[0], tmp_path / "e.txt"], ["e.txt", "empty"]
    elif case == "existing":
        assert run_cli(*args)[0] == 0
        expected = [str(out), "already holds prepared data", "--force"]
    elif case == "out-is-file":
        out.write_text("x")
        expected = [str(out), "folder"]
    elif case == "fraction":
        args += ["--val-fraction", "1"]
        expected = ["--val-fraction", "below 1"]
    elif case == "fraction-nan":
        args += ["--val-fraction", "nan"]
        expected = ["--val-fraction", "finite"]
    elif case == "sample-inf":
        args += ["--tokenizer-sample-mb", "inf"]
        expected = ["--tokenizer-sample-mb", "finite"]
    elif case == "tokenizer-folder":
        args[3:5], expected = ["--tokenizer", tmp_path], [str(tmp_path), "without encoder.json", "tokenizer.txt"]
    elif case == "tokenizer-pattern":
        odd = BPETokenizer(tokenizer.merges, tokenizer.special_tokens, pattern=r"\w+|\W")
        odd.save(tmp_path / "odd.txt")
        args[3:5], expected = ["--tokenizer", tmp_path / "odd.txt"], ["pattern", "GPT-2"]
    code, _, stderr = run_cli(*args)
    check_one_line_error(code, stderr, *expected)


def test_force_replaces_prepared_data_and_tokenizer_paths_are_accepted(tmp_path, corpus, tokenizer):
    out = tmp_path / "d"
    assert run_cli("prepare", "--text", corpus[0], "--vocab-size", "300", "--out", out, "--quiet")[0] == 0
    # a prepared folder is a tokenizer source too (its tokenizer.txt), and --force rewrites it
    code, stdout, stderr = run_cli("prepare", "--text", *corpus, "--tokenizer", out, "--out", out, "--force", "--quiet")
    assert code == 0 and stdout == "", stderr
    assert open_token_files(out).meta["sources"][2]["path"] == str(corpus[2].resolve())
    tokenizer.save(tmp_path / "tok.txt")
    assert run_cli("prepare", "--text", corpus[0], "--tokenizer", tmp_path / "tok.txt", "--out", tmp_path / "e")[0] == 0


@pytest.mark.slow
def test_ctrl_c_stops_prepare_quietly_and_leaves_no_partial_data(tmp_path, tokenizer):
    # Ctrl-C in a terminal reaches the whole process group: the parent and its pool workers
    write_corpus(tmp_path / "big.txt", 40)
    tokenizer.save(tmp_path / "tok.txt")
    out = tmp_path / "d"
    proc = subprocess.Popen([sys.executable, "-m", "gpt", "prepare", "--text", "big.txt", "--tokenizer", "tok.txt",
                             "--out", out, "--workers", "2", "--chunk-chars", "4096", "--quiet"], cwd=tmp_path,
                            env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not any(p.stat().st_size for p in out.glob(".train.bin.*")):   # ids are being written
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.strip() == "interrupted", stderr
    assert sorted(p.name for p in out.iterdir()) == ["tokenizer.txt"]        # no .bin, no meta.json, no temp file
    (tmp_path / "big.txt").write_text(TRAINING_TEXT)                                 # a rerun works
    code, _, stderr = run_cli("prepare", "--text", tmp_path / "big.txt", "--tokenizer", tmp_path / "tok.txt",
                              "--out", out, "--quiet")
    assert code == 0, stderr


# --------------------------------------------------------------------------------------------------
# pretrain --data and evaluate --data
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, corpus):
    out = tmp_path_factory.mktemp("prepared") / "d"
    code, _, stderr = run_cli("prepare", "--text", *corpus, "--vocab-size", "300", "--out", out, "--workers", 1)
    assert code == 0, stderr
    return out


def test_an_interrupted_and_resumed_data_run_ends_with_the_weights_of_an_uninterrupted_one(
        tmp_path, prepared, monkeypatch):
    args = ["pretrain", *TINY, "--data", prepared, "--eval-every", 3, "--steps", 7, "--drop-rate", "0.1", "--quiet"]
    code, stdout, stderr = run_cli(*args, "--out", tmp_path / "straight")
    assert code == 0, stderr
    assert re.fullmatch(r"validation loss \d+\.\d\d", stdout.strip().splitlines()[-1])
    with monkeypatch.context() as m:
        interrupt_at(m, 4)
        assert run_cli(*args, "--out", tmp_path / "stopped")[0] == 130
    code, stdout, stderr = run_cli("pretrain", "--resume", tmp_path / "stopped", "--quiet")
    assert code == 0, stderr
    a, b = weights(tmp_path / "stopped"), weights(tmp_path / "straight")
    assert list(a) == list(b) and all(np.array_equal(a[k], b[k]) for k in a)
    assert re.fullmatch(r"validation loss \d+\.\d\d", stdout.strip().splitlines()[-1])


def test_evaluations_on_token_files_use_windows_spread_over_val_bin(tmp_path, prepared, monkeypatch):
    from gpt.data import GPTDataset

    n_val = open_token_files(prepared).meta["tokens"]["val"]
    seen = []                                               # window indices read from val.bin
    real = GPTDataset.get_batch

    def get_batch(self, indices):
        if len(self.token_ids) == n_val:
            seen.extend(int(i) for i in indices)
        return real(self, indices)

    monkeypatch.setattr(GPTDataset, "get_batch", get_batch)
    last = (n_val - 1) // 16 - 1                           # the last window of 16 tokens (+1 target)
    args = ["pretrain", *TINY, "--data", prepared, "--eval-every", 2, "--steps", 2, "--quiet"]
    assert run_cli(*args, "--out", tmp_path / "run")[0] == 0
    assert seen and min(seen) == 0 and max(seen) == last and len(set(seen)) == 4     # 2 batches of 2
    seen.clear()
    code, stdout, stderr = run_cli("evaluate", "--checkpoint", tmp_path / "run", "--data", prepared,
                                   "--max-batches", 1, "--batch-size", 3)
    assert code == 0 and "windows 3 of 16" in stdout, stderr
    assert sorted(seen) == [0, int(last / 2 + 0.5), last]


def test_data_runs_refuse_mixed_sources_and_other_data(tmp_path, prepared, corpus, tokenizer):
    code, _, stderr = run_cli("pretrain", *TINY, "--data", prepared, "--text", corpus[0], "--out", tmp_path / "x")
    check_one_line_error(code, stderr, "--data", "--text")
    code, _, stderr = run_cli("pretrain", *TINY, "--data", prepared, "--vocab-size", "300", "--out", tmp_path / "x")
    check_one_line_error(code, stderr, "--data", "--vocab-size")
    code, _, stderr = run_cli("pretrain", *TINY, "--data", tmp_path / "none", "--out", tmp_path / "x")
    check_one_line_error(code, stderr, "none", "prepare")
    run = tmp_path / "run"
    assert run_cli("pretrain", *TINY, "--data", prepared, "--steps", 2, "--out", run, "--quiet")[0] == 0
    other = tmp_path / "other"
    prepare_token_files(corpus[:2], BPETokenizer.load(prepared / "tokenizer.txt"), other, workers=1)
    code, _, stderr = run_cli("pretrain", "--resume", run, "--data", other, "--steps", 4)
    check_one_line_error(code, stderr, "fingerprint", "--data")
    code, _, stderr = run_cli("pretrain", "--resume", run, "--text", corpus[0], "--steps", 4)
    check_one_line_error(code, stderr, "--data", "--text")


def test_evaluate_on_token_files_matches_evaluate_on_the_text(tmp_path, prepared, corpus):
    run = tmp_path / "run"
    assert run_cli("pretrain", *TINY, "--data", prepared, "--steps", 2, "--out", run, "--quiet")[0] == 0
    whole = tmp_path / "whole"
    prepare_token_files(corpus, BPETokenizer.load(prepared / "tokenizer.txt"), whole, val_fraction=0, workers=1)
    code, from_files, stderr = run_cli("evaluate", "--checkpoint", run, "--data", whole, "--split", "train")
    assert code == 0, stderr
    code, from_text, stderr = run_cli("evaluate", "--checkpoint", run, "--text", *corpus)
    assert code == 0, stderr
    assert from_files == from_text and "perplexity" in from_text
    code, stdout, stderr = run_cli("evaluate", "--checkpoint", run, "--data", prepared, "--max-batches", 1)
    assert code == 0 and "windows 8 of 16" in stdout, stderr
    other = tmp_path / "other"
    prepare_token_files(corpus, BPETokenizer.train(load_texts(corpus), 290, verbose=False), other, workers=1)
    code, _, stderr = run_cli("evaluate", "--checkpoint", run, "--data", other)
    check_one_line_error(code, stderr, "another tokenizer")


# --------------------------------------------------------------------------------------------------
# Memory stays bounded as the corpus grows (each command in a subprocess of its own)
# --------------------------------------------------------------------------------------------------

# The process's own peak is VmHWM: ru_maxrss would carry over the peak of the forked pytest process
# across exec; the workers' (forked by it, no exec) is RUSAGE_CHILDREN's ru_maxrss, the largest child's.
PEAK = """import re, resource, sys
from gpt.cli import main
code = main(sys.argv[1:])
own = int(re.search(r"VmHWM:\\s*(\\d+) kB", open("/proc/self/status").read()).group(1))
print("peak", own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def peak_kb(cwd, *argv):
    """Run ``python -m gpt ARGV`` in a subprocess: (its peak RSS, the largest child's), in KB."""
    result = subprocess.run([sys.executable, "-c", PEAK, *map(str, argv)], cwd=cwd, capture_output=True,
                            env=subprocess_env(OPENBLAS_NUM_THREADS="1"), text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    own, child = map(int, re.search(r"^peak (\d+) (\d+)$", result.stderr, re.M).groups())
    return own, child


def write_corpus(path, megabytes, seed=0):
    """``megabytes`` MB of lines of random words (from a seeded list of 5,000), made of four 1 MB blocks:
    two wrapped into lines, two with one paragraph per line and a blank line between paragraphs."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = ["".join(rng.choice(letters, size=rng.integers(1, 10))) for _ in range(5000)]
    blocks = []
    for k in range(4):
        lines, size = [], 0
        lengths = (3, 16) if k < 2 else (40, 400)
        while size < 1 << 20:
            picked = rng.integers(0, 5000, size=rng.integers(*lengths))
            lines.append(" ".join(words[i] for i in picked).capitalize() + ".")
            size += len(lines[-1]) + 1
        blocks.append(("\n" if k < 2 else "\n\n").join(lines) + "\n")
    with open(path, "w", encoding="utf-8") as f:
        for k in rng.integers(0, 4, size=megabytes):
            f.write(blocks[k])


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads the peak RSS from /proc (Linux)")
def test_memory_stays_bounded_as_the_corpus_grows(tmp_path):
    big = 80
    peaks = {}
    for mb in (1, big):
        write_corpus(tmp_path / f"c{mb}.txt", mb)
        data = tmp_path / f"d{mb}"
        prepare = peak_kb(tmp_path, "prepare", "--text", f"c{mb}.txt", "--vocab-size", "2000", "--tokenizer-sample-mb",
                          "1", "--workers", "2", "--out", data, "--quiet")
        (tmp_path / f"c{mb}.txt").unlink()
        pretrain = peak_kb(tmp_path, "pretrain", "--data", data, *TINY, "--steps", 3, "--eval-every", 3,
                           "--out", tmp_path / f"r{mb}", "--quiet")
        peaks[mb] = prepare, pretrain
    corpus_kb = big * 1024
    (small_prepare, small_worker), (small_pretrain, _) = peaks[1]
    (big_prepare, big_worker), (big_pretrain, _) = peaks[big]
    # preparing: the main process and each worker stay well below the corpus size ...
    assert big_prepare < 0.8 * corpus_kb and big_worker < 0.8 * corpus_kb, peaks
    # ... and barely above their peaks for a 1 MB corpus: nothing grows with the text
    assert big_prepare - small_prepare < 12 * 1024 and big_worker - small_worker < 12 * 1024, peaks
    # training reads windows from the memory map; what grows is the order of the windows (uint32,
    # two passes alive while an evaluation reads training batches), not the tokens
    windows = (tmp_path / f"d{big}" / "train.bin").stat().st_size // 2 // 16
    assert big_pretrain - small_pretrain < (2 * 4 * windows) / 1024 + 12 * 1024, peaks
    # (no absolute bound here: pretrain's baseline, 50-85 MB with NumPy and, when installed, matplotlib
    # for the loss plot, does not depend on the corpus; what matters is that it hardly grows with it)
    assert big_pretrain - small_pretrain < corpus_kb / 3, peaks
