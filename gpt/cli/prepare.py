"""``python -m gpt prepare``: tokenize a corpus once, streaming, into token files that training
memory-maps (``python -m gpt pretrain --data DIR``), for corpora larger than memory.

    python -m gpt prepare --text books/*.txt --vocab-size 4096 --out data/books
    python -m gpt prepare --text web.txt --tokenizer data/gpt2-small --out data/web --workers 2
    python -m gpt pretrain --data data/books --config mini --steps 2000

The files are read a megabyte at a time, cut where tokenization does not change
(:mod:`gpt.text_chunks`), encoded by worker processes and appended to ``DIR/train.bin`` and
``DIR/val.bin``; the formats and the validation rule are in :mod:`gpt.token_files`.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from gpt.cli import CLIError
from gpt.cli.common import duration, fraction_below_one, positive_float, positive_int

DEFAULT_VOCAB_SIZE = 4096  # as pretrain's default
DEFAULT_SAMPLE_MB = 20.0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "prepare", help="tokenize a large corpus once into token files for 'pretrain --data'",
        description="Tokenize UTF-8 text files, streaming (memory stays bounded whatever their size), into "
                    "DIR/train.bin and DIR/val.bin (raw uint16/uint32 token ids), DIR/meta.json and "
                    "DIR/tokenizer.txt. Train on them with 'python -m gpt pretrain --data DIR'.")
    p.add_argument("--text", nargs="+", required=True, metavar="FILE", help="UTF-8 text file(s), joined by a blank line")
    tok = p.add_mutually_exclusive_group()
    tok.add_argument("--tokenizer", metavar="PATH",
                     help="a saved tokenizer file, a folder with GPT-2's encoder.json and vocab.bpe, a "
                          "pretraining run or checkpoint, or a prepared folder")
    tok.add_argument("--vocab-size", type=positive_int, metavar="N",
                     help=f"train a BPE vocabulary of N ids on the start of the text (default: {DEFAULT_VOCAB_SIZE})")
    p.add_argument("--tokenizer-sample-mb", type=positive_float, default=DEFAULT_SAMPLE_MB, metavar="MB",
                   help=f"train the vocabulary on the first MB megabytes of the text (default: {DEFAULT_SAMPLE_MB:g})")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the token files")
    p.add_argument("--val-fraction", type=fraction_below_one, default=0.1, metavar="F",
                   help="share of the text (in whole chunks, spread through it) for validation (default: 0.1)")
    p.add_argument("--workers", type=positive_int, default=2, metavar="N",
                   help="processes encoding in parallel (default: 2; 1 = no worker processes)")
    p.add_argument("--chunk-chars", type=positive_int, metavar="N",
                   help="characters per chunk (default: a hundredth of the input, from 256 up to 256 KiB)")
    p.add_argument("--force", action="store_true", help="replace prepared data already in DIR")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=run)


# ---------------------------------------------------------------------- pieces
class ByteProgress:
    """MB read of the total and MB/s: one live line on a terminal (\\r), a plain line every 30 s otherwise."""

    def __init__(self, quiet: bool, label: str = "prepare"):
        self.quiet, self.label = quiet, label
        self.tty = sys.stderr.isatty()
        self.start = self.last_print = time.perf_counter()

    def update(self, done: int, total: int) -> None:
        if self.quiet:
            return
        now = time.perf_counter()
        if not self.tty and now - self.last_print < 30:
            return
        rate = done / 1e6 / (now - self.start) if now > self.start else 0.0
        eta = (total - done) / 1e6 / rate if rate else float("nan")
        line = f"{self.label}: {done / 1e6:,.1f} / {total / 1e6:,.1f} MB  {rate:,.1f} MB/s  ETA {duration(eta)}"
        if self.tty:
            sys.stderr.write("\r" + line.ljust(78))
            sys.stderr.flush()
        else:
            print(line, file=sys.stderr, flush=True)
        self.last_print = now

    def clear(self) -> None:
        if self.tty and not self.quiet:
            sys.stderr.write("\r" + " " * 78 + "\r")
            sys.stderr.flush()


def _train_on_sample(paths, vocab_size: int, sample_mb: float, quiet: bool):
    """A BPE vocabulary learned from the first ``sample_mb`` million characters of the joined text
    (read a megabyte at a time, so memory stays near the sample's size whatever the lines are like)."""
    import warnings

    from gpt.text_chunks import read_texts
    from gpt.tokenizer import BPETokenizer

    limit = int(sample_mb * 1e6)
    pieces, size = [], 0
    for piece, _ in read_texts(paths):
        pieces.append(piece[: limit - size])
        size += len(pieces[-1])
        if size >= limit:
            break
    sample = "".join(pieces)
    del pieces
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:  # e.g. "ran out of pairs": one line, below
        warnings.simplefilter("always")
        try:
            tokenizer = BPETokenizer.train(sample, vocab_size, verbose=False if quiet else None)
        except ValueError as e:
            raise CLIError(str(e)) from None
    if not quiet:
        for w in caught:
            print(f"note: {w.message}", flush=True)
        print(f"trained a {tokenizer.n_vocab:,}-token BPE vocabulary on {size:,} characters in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
    return tokenizer


# ---------------------------------------------------------------------- the command
def run(args: argparse.Namespace) -> int:
    from gpt.cli.tokenizer import load_tokenizer
    from gpt.text_chunks import check_files, check_pattern
    from gpt.token_files import holds_token_files, prepare_token_files

    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    out = Path(args.out)
    try:
        paths = check_files(args.text)
        if out.exists() and not out.is_dir():
            raise CLIError(f"{out} is a file; --out must be a folder")
        if holds_token_files(out) and not args.force:
            raise CLIError(f"{out} already holds prepared data; pass --force to replace it, or another --out")
        if args.tokenizer:
            tokenizer = load_tokenizer(args.tokenizer)
            check_pattern(tokenizer.pattern)
        else:
            tokenizer = _train_on_sample(paths, args.vocab_size or DEFAULT_VOCAB_SIZE, args.tokenizer_sample_mb,
                                         args.quiet)
        progress = ByteProgress(args.quiet)
        started = time.perf_counter()
        try:
            meta = prepare_token_files(paths, tokenizer, out, val_fraction=args.val_fraction, workers=args.workers,
                                       chunk_chars=args.chunk_chars, force=args.force, on_progress=progress.update)
        finally:
            progress.clear()
    except (OSError, ValueError) as e:  # missing files, folders, not UTF-8, empty files, ...
        raise CLIError(str(e)) from None
    seconds = time.perf_counter() - started
    megabytes = sum(s["bytes"] for s in meta["sources"]) / 1e6
    tokens = meta["tokens"]
    say(f"prepared {tokens['train'] + tokens['val']:,} tokens ({tokens['train']:,} training, {tokens['val']:,} "
        f"validation; {meta['dtype']}) from {megabytes:,.1f} MB in {duration(seconds)}, "
        f"{megabytes / max(seconds, 1e-9):,.1f} MB/s: {out / 'train.bin'}, {out / 'val.bin'}, {out / 'meta.json'}")
    return 0
