"""Tokenizer speed: encoding throughput (vs tiktoken when it is installed) and BPE training time;
reading a ``tokenizer.json`` and encoding the default corpus (vs the ``tokenizers`` library).

Used by ``python -m gpt bench``; also runnable alone: ``python -m gpt.tokenizer.bench [GPT2_DIR]``.
Timings are the best of several runs, the usual way to measure on a shared machine; encoding is
"cold": the tokenizer's piece cache is emptied before each run, so every distinct piece of the text
goes through BPE (tiktoken has no such cache). One untimed encoding first builds what a tokenizer
builds once in its life (the pair table of :mod:`gpt.tokenizer.batch`), as tiktoken's timing
excludes building its Encoding.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from gpt.tokenizer.bpe import BPETokenizer


@dataclass
class BenchResult:
    text_bytes: int  # size of the benchmark text in UTF-8 bytes
    tokens: int  # tokens in it, with the vocabulary below
    vocabulary: str  # "gpt2" or "trained-<vocab_size>"
    encode_mb_per_s: float  # ours, cold cache, single thread (MB = 10^6 bytes)
    warm_encode_mb_per_s: float  # ours, every piece already cached
    tiktoken_mb_per_s: float | None  # tiktoken's encode_ordinary on the same text and vocabulary, or None
    train_seconds: float  # time to train a ``train_vocab_size`` vocabulary on the text
    train_vocab_size: int

    def summary(self) -> str:
        lines = [
            f"text: {self.text_bytes / 1e3:.0f} KB -> {self.tokens} tokens ({self.vocabulary} vocabulary)",
            f"encode (cold cache): {self.encode_mb_per_s:.2f} MB/s; warm cache: {self.warm_encode_mb_per_s:.2f} MB/s",
        ]
        if self.tiktoken_mb_per_s is not None:
            lines.append(
                f"tiktoken encode_ordinary: {self.tiktoken_mb_per_s:.2f} MB/s "
                f"(ours / tiktoken = {self.encode_mb_per_s / self.tiktoken_mb_per_s:.2f})"
            )
        lines.append(f"train a {self.train_vocab_size}-token vocabulary: {self.train_seconds:.2f} s")
        return "\n".join(lines)


def default_text() -> str:
    """About 465 KB of English: the Python reference docs that ship with CPython (``pydoc_data.topics``)."""
    try:
        from pydoc_data.topics import topics
    except ImportError:
        raise RuntimeError("this Python has no pydoc_data module; pass the benchmark a text of your own") from None
    return "".join(topics.values())


def _best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _tiktoken_encoding(tok: BPETokenizer, gpt2_dir: Path | None):
    """tiktoken's Encoding for the same vocabulary, built offline; None if tiktoken is not installed."""
    try:
        import tiktoken
        import tiktoken.load
    except ImportError:
        return None
    if gpt2_dir is not None:
        ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(
            str(gpt2_dir / "vocab.bpe"), str(gpt2_dir / "encoder.json")
        )
    else:
        ranks = tok.mergeable_ranks
    return tiktoken.Encoding("bench", pat_str=tok.pattern, mergeable_ranks=ranks, special_tokens=tok.special_tokens)


def benchmark(
    text: str | None = None,
    gpt2_dir: str | os.PathLike | None = None,
    train_vocab_size: int = 4096,
    repeats: int = 10,
    compare_tiktoken: bool = True,
) -> BenchResult:
    """Measure encoding speed and training time on ``text`` (default: :func:`default_text`).

    Encoding uses GPT-2's vocabulary from ``gpt2_dir`` (a folder with ``encoder.json`` and
    ``vocab.bpe``; default: ``gpt2/`` in ``$GPT_REFERENCE_DATA`` or else in ``data/book`` (what
    ``python -m gpt download book-data`` fills), when that exists), else the vocabulary
    trained here. tiktoken, when importable, encodes the same text with the same vocabulary.
    """
    text = default_text() if text is None else text
    data_bytes = len(text.encode("utf-8"))
    gpt2_dir = _gpt2_dir(gpt2_dir)

    train_seconds = float("inf")
    trained = None
    for _ in range(min(3, max(1, repeats // 2))):
        t0 = time.perf_counter()
        trained = BPETokenizer.train(text, train_vocab_size, verbose=False)
        train_seconds = min(train_seconds, time.perf_counter() - t0)

    if gpt2_dir is not None:
        tok = BPETokenizer.from_gpt2_files(gpt2_dir / "encoder.json", gpt2_dir / "vocab.bpe")
        vocabulary = "gpt2"
    else:
        tok, vocabulary = trained, f"trained-{train_vocab_size}"

    tokens = len(tok.encode_ordinary(text))  # untimed: also builds the one-time pair table
    enc = _tiktoken_encoding(tok, gpt2_dir) if compare_tiktoken else None
    if enc is not None and enc.encode_ordinary(text) != tok.encode_ordinary(text):
        raise RuntimeError("tiktoken and BPETokenizer disagree on the benchmark text (a bug)")
    # Alternate the contenders so that a busy moment on the machine does not favour one of them.
    cold_s = warm_s = tiktoken_s = float("inf")
    for _ in range(repeats):
        tok.clear_cache()  # (not timed: emptying the cache is not part of encoding)
        cold_s = min(cold_s, _best_time(lambda: tok.encode_ordinary(text), 1))
        warm_s = min(warm_s, _best_time(lambda: tok.encode_ordinary(text), 1))
        if enc is not None:
            tiktoken_s = min(tiktoken_s, _best_time(lambda: enc.encode_ordinary(text), 1))
    tiktoken_mb = data_bytes / tiktoken_s / 1e6 if enc is not None else None
    return BenchResult(
        text_bytes=data_bytes,
        tokens=tokens,
        vocabulary=vocabulary,
        encode_mb_per_s=data_bytes / cold_s / 1e6,
        warm_encode_mb_per_s=data_bytes / warm_s / 1e6,
        tiktoken_mb_per_s=tiktoken_mb,
        train_seconds=train_seconds,
        train_vocab_size=train_vocab_size,
    )


@dataclass
class HFBenchResult:
    """``HFTokenizer`` against the ``tokenizers`` library: load a ``tokenizer.json``, then encode every
    document of the default corpus with one ``encode`` call each, on one thread (best of the repeats)."""

    text_bytes: int
    documents: int
    tokens: int
    vocabulary: str  # "gpt2" (OpenAI's files, converted by tokenizers) or "trained-<vocab_size>"
    ours_load_s: float
    ours_total_s: float  # load + encode
    theirs_load_s: float
    theirs_total_s: float

    @property
    def ratio(self) -> float:
        """Our speed over the library's (its time / ours), load included: above 1 means faster."""
        return self.theirs_total_s / self.ours_total_s

    def summary(self) -> str:
        return (f"tokenizer.json ({self.vocabulary}), load + encode {self.documents} documents "
                f"({self.text_bytes / 1e6:.2f} MB, {self.tokens} tokens), one encode per document, one thread: "
                f"ours {self.ours_total_s:.2f} s (load {self.ours_load_s:.2f} s), tokenizers "
                f"{self.theirs_total_s:.2f} s (load {self.theirs_load_s:.2f} s); ours / tokenizers speed = {self.ratio:.2f}")


def hf_benchmark(documents: list[str] | None = None, gpt2_dir: str | os.PathLike | None = None,
                 repeats: int = 3) -> HFBenchResult | None:
    """Time ``HFTokenizer`` and the ``tokenizers`` library (``TOKENIZERS_PARALLELISM=false``) on the same
    ``tokenizer.json``: GPT-2's vocabulary converted by ``tokenizers`` when ``gpt2_dir`` (or the
    reference data) has it, else a 4,096-token byte-level BPE the library trains on the text
    (untimed). ``documents``: default, the documents of the default corpus. None if ``tokenizers``
    is not installed. The two must give the same ids (checked), or this raises RuntimeError.
    """
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    except ImportError:
        return None
    import tempfile

    from gpt.tokenizer.hf import HFTokenizer

    if documents is None:
        from gpt.corpus import corpus_documents

        documents = [d.text for d in corpus_documents("docs")]
    gpt2_dir = _gpt2_dir(gpt2_dir)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "tokenizer.json")
        if gpt2_dir is not None:
            lib = Tokenizer(models.BPE.from_file(str(gpt2_dir / "encoder.json"), str(gpt2_dir / "vocab.bpe")))
            vocabulary = "gpt2"
        else:
            lib = Tokenizer(models.BPE())
            vocabulary = "trained-4096"
        lib.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        lib.decoder = decoders.ByteLevel()
        if gpt2_dir is None:
            lib.train_from_iterator(documents, trainers.BpeTrainer(
                vocab_size=4096, special_tokens=["<|endoftext|>"], show_progress=False,
                initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        else:
            lib.add_special_tokens(["<|endoftext|>"])
        lib.save(path)

        def ours():
            tok = HFTokenizer.from_file(path)
            loaded = time.perf_counter()
            return loaded, [tok.encode(d, add_special_tokens=False, disallowed_special=()) for d in documents]

        def theirs():
            tok = Tokenizer.from_file(path)
            loaded = time.perf_counter()
            return loaded, [tok.encode(d, add_special_tokens=False).ids for d in documents]

        best = {ours: (float("inf"), float("inf")), theirs: (float("inf"), float("inf"))}
        checked = False
        for _ in range(repeats):  # alternating, so that a busy moment on the machine favours neither
            for fn in (ours, theirs):
                t0 = time.perf_counter()
                loaded, ids = fn()
                total = time.perf_counter() - t0
                best[fn] = min(best[fn], (total, loaded - t0))
                if fn is ours:
                    our_ids = ids
                elif not checked:
                    if ids != our_ids:
                        raise RuntimeError("HFTokenizer and the tokenizers library disagree on the corpus (a bug)")
                    checked = True
    return HFBenchResult(
        text_bytes=sum(len(d.encode("utf-8")) for d in documents), documents=len(documents),
        tokens=sum(map(len, our_ids)), vocabulary=vocabulary,
        ours_total_s=best[ours][0], ours_load_s=best[ours][1],
        theirs_total_s=best[theirs][0], theirs_load_s=best[theirs][1])


def _gpt2_dir(gpt2_dir) -> Path | None:
    """``gpt2_dir``, or ``gpt2/`` of the reference data when it has GPT-2's files, or None."""
    if gpt2_dir is None:
        from gpt.download import reference_data_dir

        reference = reference_data_dir(Path.cwd())
        candidate = reference / "gpt2" if reference is not None else None
        gpt2_dir = candidate if candidate is not None and (candidate / "encoder.json").is_file() else None
    return Path(gpt2_dir) if gpt2_dir is not None else None


if __name__ == "__main__":
    print(benchmark(gpt2_dir=sys.argv[1] if len(sys.argv) > 1 else None).summary())
    hf = hf_benchmark(gpt2_dir=sys.argv[1] if len(sys.argv) > 1 else None)
    if hf is not None:
        print(hf.summary())
