"""``python -m gpt bench``: how fast training, inference and tokenization run on this machine."""
from __future__ import annotations

import argparse
import json
import sys

from gpt.cli import CLIError
from gpt.cli.common import positive_int

# Kept here, not imported from gpt.bench (which loads NumPy), so that --help stays instant;
# tests/test_bench.py checks that they match gpt.bench's.
SECTIONS = ("matmul", "train", "forward", "generate", "tokenizer", "breakdown", "decoder", "embeddings")
MODELS = ("gpt2-small", "pretrain-default")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bench", help="measure training, inference and tokenizer speed on this machine",
        description="Median timings after a warm-up: float32 matmul peak, an AdamW training step and a "
                    "forward pass (gpt2-small shape at batch 2 x 256, and the default pretraining "
                    "model), greedy generation with and without the KV cache, BPE encoding and "
                    "training, a tokenizer.json loaded and encoding the default corpus against the "
                    "tokenizers library (when installed), peak memory, the time per op of a forward pass and a "
                    "training step, and prefill/decode speed of a Qwen3-0.6B-shaped model against transformers "
                    "(when installed), and all-MiniLM-L6-v2's sentences/s at batch 32 against sentence-transformers "
                    "(when both are here). Give --torch PATH/torch_ref.py to run the PyTorch reference in the same "
                    "session and print the ratios.")
    p.add_argument("--only", nargs="+", choices=SECTIONS, metavar="SECTION",
                   help=f"run only these sections ({', '.join(SECTIONS)})")
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS), metavar="MODEL",
                   help=f"models for train/forward/breakdown ({', '.join(MODELS)}; default: both)")
    p.add_argument("--repeats", type=positive_int, default=3, metavar="N", help="timed repeats per measurement (default: 3)")
    p.add_argument("--vocab", metavar="DIR", help="GPT-2's encoder.json/vocab.bpe folder for the tokenizer section")
    p.add_argument("--torch", metavar="SCRIPT", help="PyTorch reference script (shared/bench/torch_ref.py) to compare with")
    p.add_argument("--rounds", type=positive_int, default=1, metavar="N",
                   help="with --torch: alternate our measurements and PyTorch's N times and report the "
                        "median ratios (default: 1)")
    p.add_argument("--decoder-layers", type=positive_int, metavar="N",
                   help="decoder section: build N of Qwen3-0.6B's 28 layers (default: all 28; fewer run faster)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=run)


def _line(key: str, r: dict) -> str:
    items = ", ".join(f"{k}={v}" for k, v in r.items() if not isinstance(v, dict))
    return f"{key:<26} {items}"


def run(args: argparse.Namespace) -> int:
    from gpt.bench import run_benchmarks

    if args.torch:
        from pathlib import Path
        if not Path(args.torch).is_file():
            raise CLIError(f"{args.torch}: no such file")
    report = None if args.json else (lambda k, r: print(_line(k, r), flush=True))
    results = run_benchmarks(sections=tuple(args.only or SECTIONS), repeats=args.repeats, models=tuple(args.models),
                             gpt2_dir=args.vocab, torch_script=args.torch, rounds=args.rounds,
                             report=report, decoder_layers=args.decoder_layers)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
    elif "median_ratios" in results:
        for i, r in enumerate(results["rounds"], 1):
            print(_line(f"ratios, round {i}", r))
        print(_line("median ratios (ours/torch)", results["median_ratios"]))
    elif "torch" in results and "ours_over_torch" in results["torch"]:
        print(_line("ratios (ours / torch)", results["torch"]["ours_over_torch"]))
    return 0
