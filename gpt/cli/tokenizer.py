"""``python -m gpt train-tokenizer`` and ``python -m gpt tokenize``: train a BPE vocabulary, look at tokens.

    python -m gpt train-tokenizer --input the-verdict.txt --vocab-size 1000 --out verdict.bpe
    python -m gpt tokenize --tokenizer verdict.bpe "It had always been his fate"
    python -m gpt tokenize --tokenizer path/to/gpt2 --file notes.txt --ids-only
    python -m gpt tokenize --tokenizer runs/pretrain "The for statement"     (a run's own tokenizer)
    python -m gpt tokenize --tokenizer verdict.bpe --merges 20
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gpt.cli import CLIError
from gpt.cli.common import non_negative_int


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train-tokenizer",
        help="train a byte-level BPE vocabulary on text files",
        description="Learn a byte-level BPE vocabulary (GPT-2 style) from UTF-8 text files and save it.",
    )
    p.add_argument("--input", nargs="+", required=True, metavar="FILE", help="UTF-8 text file(s) to learn from")
    p.add_argument("--vocab-size", type=int, required=True, metavar="N",
                   help="ids in the vocabulary: 256 bytes + merges + special tokens")
    p.add_argument("--out", required=True, metavar="PATH", help="where to save the tokenizer (a text file)")
    p.add_argument("--special", nargs="*", default=["<|endoftext|>"], metavar="TOKEN",
                   help="special tokens (default: <|endoftext|>; give --special alone for none)")
    p.add_argument("--pattern", default=None, metavar="REGEX",
                   help="pre-split regex, `regex` module syntax (default: GPT-2's)")
    p.add_argument("--gpt2-out", default=None, metavar="DIR",
                   help="also write encoder.json and vocab.bpe (GPT-2's format) into this folder")
    p.add_argument("--show", type=non_negative_int, default=10, metavar="K", help="print the first K merges learned (default 10)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=train_tokenizer)

    p = subparsers.add_parser(
        "tokenize",
        help="show the token ids and pieces of a text",
        description="Encode a text and show each token id with the text it stands for.",
    )
    p.add_argument("text", nargs="?", help="the text to encode (or use --file)")
    p.add_argument("--tokenizer", required=True, metavar="PATH",
                   help="a file saved by train-tokenizer, a folder with GPT-2's encoder.json and vocab.bpe, "
                        "a tokenizer.json (or a Hugging Face model folder holding one), "
                        "or a checkpoint: a pretraining run's folder (its newest step) or one step-NNNNNN folder")
    p.add_argument("--file", metavar="FILE", help="encode this UTF-8 file instead of TEXT")
    p.add_argument("--allow-special", action="store_true",
                   help="turn special-token text such as <|endoftext|> into its id (default: an error)")
    p.add_argument("--ids-only", action="store_true", help="print only the ids, on one line")
    p.add_argument("--merges", type=non_negative_int, metavar="K", help="print the tokenizer's first K merges")
    p.set_defaults(func=tokenize)


def load_tokenizer(path: str):
    """A BPETokenizer from a saved file, a folder holding GPT-2's ``encoder.json`` + ``vocab.bpe``, or a
    folder's ``tokenizer.txt``: a checkpoint's (a run's folder, through its ``latest``, or a step
    folder) or prepared data's (``python -m gpt prepare``); an HFTokenizer from a ``tokenizer.json``
    or a folder holding one (a Hugging Face model folder, or a checkpoint that carries one)."""
    from gpt.checkpoint import HF_TOKENIZER_FILE, LATEST, TOKENIZER_FILE, resolve
    from gpt.tokenizer import BPETokenizer, HFTokenizer

    p = Path(path)
    if p.is_dir():
        enc, bpe = p / "encoder.json", p / "vocab.bpe"
        if enc.is_file() and bpe.is_file():
            return BPETokenizer.from_gpt2_files(enc, bpe)
        if (p / LATEST).is_file():
            p = resolve(p)   # the run's newest step folder; a CheckpointError (one line) if it is damaged
        if (p / TOKENIZER_FILE).is_file():
            return BPETokenizer.load(p / TOKENIZER_FILE)
        if (p / HF_TOKENIZER_FILE).is_file():
            return HFTokenizer.from_file(p / HF_TOKENIZER_FILE)
        if (p / "model.safetensors").is_file():
            raise CLIError(f"the checkpoint {p} has no {TOKENIZER_FILE} (its model uses GPT-2's vocabulary?); "
                           "give the folder with encoder.json and vocab.bpe")
        raise CLIError(f"{p} is a folder without encoder.json and vocab.bpe or a {TOKENIZER_FILE}, and not a "
                       "checkpoint; give a tokenizer file, a GPT-2 folder, a pretraining run's folder or prepared data")
    if not p.exists():
        raise CLIError(f"tokenizer not found: {p} (train one with `python -m gpt train-tokenizer`)")
    if p.suffix == ".json":
        return HFTokenizer.from_file(p)
    return BPETokenizer.load(p)


def _read_text(path: str) -> str:
    p = Path(path)
    if not p.is_file():
        raise CLIError(f"input file not found: {p}")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise CLIError(f"{p} is not UTF-8 text (byte {e.start}); convert it to UTF-8 first") from None


def train_tokenizer(args: argparse.Namespace) -> int:
    import time

    from gpt.tokenizer import GPT2_PATTERN, BPETokenizer

    specials = list(dict.fromkeys(args.special))
    minimum = 256 + len(specials)
    if args.vocab_size < minimum:
        raise CLIError(
            f"--vocab-size {args.vocab_size} is too small: the 256 byte tokens and {len(specials)} "
            f"special token(s) need at least {minimum}"
        )
    if args.gpt2_out is not None and not Path(args.gpt2_out).is_dir():
        raise CLIError(f"--gpt2-out {args.gpt2_out} is not a folder; create it first")
    out = Path(args.out)
    if not out.parent.is_dir():
        raise CLIError(f"cannot write {out}: the folder {out.parent} does not exist")
    texts = [_read_text(f) for f in args.input]
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    if not any(t.strip() for t in texts):
        raise CLIError("the training corpus is empty (only whitespace or no text at all)")
    t0 = time.perf_counter()
    tok = BPETokenizer.train(
        texts,
        args.vocab_size,
        pattern=args.pattern or GPT2_PATTERN,
        special_tokens=specials,
        verbose=False if args.quiet else None,
    )
    seconds = time.perf_counter() - t0
    tok.save(out)
    if args.gpt2_out is not None:
        tok.save_gpt2_files(Path(args.gpt2_out) / "encoder.json", Path(args.gpt2_out) / "vocab.bpe")
    print(f"learned {len(tok.merges)} merges from {n_bytes / 1e6:.2f} MB in {seconds:.1f} s; "
          f"{tok.n_vocab} ids; saved to {out}")
    if args.show > 0 and tok.merges:
        print(f"first {min(args.show, len(tok.merges))} merges:")
        for line in tok.describe_merges(args.show):
            print("  " + line)
    return 0


def tokenize(args: argparse.Namespace) -> int:
    from gpt.tokenizer.bpe import readable

    if args.text is not None and args.file is not None:
        raise CLIError("give either TEXT or --file, not both")
    from gpt.tokenizer import HFTokenizer

    tok = load_tokenizer(args.tokenizer)
    if args.merges is not None and isinstance(tok, HFTokenizer):
        raise CLIError("--merges lists a BPETokenizer's merges; a tokenizer.json keeps them in its \"merges\" list")
    if args.merges is not None:
        for line in tok.describe_merges(args.merges):
            print(line)
        if args.text is None and args.file is None:
            return 0
    if args.text is None and args.file is None:
        raise CLIError("nothing to encode: give a TEXT, --file FILE or --merges K")
    text = _read_text(args.file) if args.file is not None else args.text
    ids = tok.encode(text, allowed_special="all" if args.allow_special else frozenset())
    if args.ids_only:
        print(" ".join(map(str, ids)))
        return 0
    print(f"{len(ids)} tokens, {len(text)} characters")
    width = len(str(max(ids, default=0)))
    out = sys.stdout
    for i in ids:
        if isinstance(tok, HFTokenizer):  # the token as the file spells it ("Ġthe", "▁the", "##ing")
            out.write(f"{i:>{width}}  \"{readable(tok.id_to_token(i).encode('utf-8'))}\"\n")
        else:
            out.write(f"{i:>{width}}  \"{readable(tok.decode_single_token_bytes(i))}\"\n")
    return 0
