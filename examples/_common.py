"""Plumbing shared by the example scripts (not part of the book): command-line flags, finding the
book's reference files, and section headings. The chapter's ideas live in the scripts themselves.

Every example accepts:

    --fast            a few-seconds run with smaller settings (the test suite uses it);
                      the environment variable EXAMPLES_FAST=1 does the same
    --data-dir DIR    the folder with the book's files (the-verdict.txt, and GPT-2's encoder.json and
                      vocab.bpe in DIR/gpt2/ or DIR); defaults to the environment variable
                      GPT_REFERENCE_DATA, else to data/book in the repository when it exists
                      (what `python -m gpt download book-data` fills when run there); the tests
                      look in the same places (gpt.download.reference_data_dir)
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# Run from a source checkout without `pip install -e .`: put the repository root on the path.
_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from gpt.cli.common import positive_int  # noqa: E402,F401  (re-exported for the examples)
from gpt.download import reference_data_dir  # noqa: E402


def parse_args(description: str, configure=None) -> argparse.Namespace:
    """Parse the shared flags (plus any that ``configure(parser)`` adds); sets ``args.fast``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--fast", action="store_true",
                        help="finish in a few seconds with smaller settings (also: EXAMPLES_FAST=1)")
    default = reference_data_dir(_ROOT)
    parser.add_argument("--data-dir", metavar="DIR", default=str(default) if default is not None else None,
                        help="folder with the-verdict.txt and GPT-2's encoder.json + vocab.bpe (in DIR/gpt2/ "
                             "or DIR) (default: $GPT_REFERENCE_DATA, else data/book in the repository when "
                             "`python -m gpt download book-data` has filled it)")
    if configure is not None:
        configure(parser)
    args = parser.parse_args()
    args.fast = args.fast or os.environ.get("EXAMPLES_FAST", "").strip() not in ("", "0")
    if args.data_dir and not Path(args.data_dir).is_dir():
        parser.error(f"--data-dir {args.data_dir} is not a folder; it should hold the-verdict.txt and GPT-2's "
                     "encoder.json + vocab.bpe (leave it unset to use the embedded corpus)")
    return args


def reference_file(args: argparse.Namespace, relative: str) -> Path | None:
    """``DIR/relative`` if ``--data-dir`` (or its default) names a folder holding it, else None."""
    if not args.data_dir:
        return None
    path = Path(args.data_dir) / relative
    return path if path.is_file() else None


def gpt2_tokenizer(args: argparse.Namespace):
    """GPT-2's tokenizer (what the book gets from ``tiktoken.get_encoding("gpt2")``), or None when
    the vocabulary files are not available."""
    from gpt.tokenizer import BPETokenizer
    for folder in ("gpt2/", ""):   # the shared data layout, or the files of `python -m gpt download gpt2-small`
        encoder, vocab = reference_file(args, folder + "encoder.json"), reference_file(args, folder + "vocab.bpe")
        if encoder is not None and vocab is not None:
            return BPETokenizer.from_gpt2_files(encoder, vocab)
    return None


# What to tell a user whose --data-dir lacks a file
WHERE_TO_GET_THE_DATA = (
    "`python -m gpt download book-data`, run in the repository, puts the-verdict.txt and GPT-2's "
    "encoder.json and vocab.bpe in data/book, where the examples look without --data-dir"
)


def section(title: str) -> None:
    """Print a heading, so that the output reads like the book's sections."""
    print(f"\n{'=' * 8} {title} {'=' * max(3, 70 - len(title))}")


def ascii_plot(series: dict, width: int = 64, height: int = 14, x_label: str = "", y_format: str = "{:.3g}") -> str:
    """A terminal line chart, for when matplotlib is not installed.

    ``series``: name -> (xs, ys). Each series is drawn with its own character (``*``, ``o``, ``+``,
    ...) in a ``width`` x ``height`` grid scaled to the data; later series draw over earlier ones.
    """
    marks = "*o+x#"
    points = [(float(x), float(y)) for xs, ys in series.values() for x, y in zip(xs, ys)]
    if not points:
        return "(nothing to plot)"
    x_lo, x_hi = min(p[0] for p in points), max(p[0] for p in points)
    y_lo, y_hi = min(p[1] for p in points), max(p[1] for p in points)
    x_span, y_span = (x_hi - x_lo) or 1.0, (y_hi - y_lo) or 1.0
    grid = [[" "] * width for _ in range(height)]
    for mark, (xs, ys) in zip(marks, series.values()):
        for x, y in zip(xs, ys):
            col = round((float(x) - x_lo) / x_span * (width - 1))
            row = round((y_hi - float(y)) / y_span * (height - 1))   # row 0 is the top
            grid[row][col] = mark
    labels = [y_format.format(y_hi), y_format.format(y_lo)]
    pad = max(len(s) for s in labels)
    lines = []
    for i, row in enumerate(grid):
        label = labels[0] if i == 0 else labels[1] if i == height - 1 else ""
        lines.append(f"{label:>{pad}} |" + "".join(row))
    lines.append(" " * pad + " +" + "-" * width)
    lines.append(" " * pad + f"  {x_lo:<{width // 2}.6g}{x_hi:>{width - width // 2}.6g}")
    legend = "   ".join(f"{m} {name}" for m, name in zip(marks, series))
    lines.append(" " * pad + f"  {legend}" + (f"   (x: {x_label})" if x_label else ""))
    return "\n".join(lines)


def matplotlib_pyplot():
    """``matplotlib.pyplot`` with a file-only backend, or None when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


class Stopwatch:
    """``with Stopwatch() as t: ...`` then ``t.seconds``."""

    def __enter__(self) -> "Stopwatch":
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._start
