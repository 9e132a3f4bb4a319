"""Helpers shared by the command-line commands: argument types and loading a model to use."""
from __future__ import annotations

import argparse
from pathlib import Path

from gpt.cli import CLIError


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def probability(text: str) -> float:
    value = non_negative_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text}")
    return value


def add_model_source(parser: argparse.ArgumentParser) -> None:
    """--checkpoint DIR, or --gpt2 model.safetensors with --vocab DIR (GPT-2's tokenizer files)."""
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", metavar="DIR", help="a checkpoint written by 'python -m gpt pretrain'")
    src.add_argument("--gpt2", metavar="PATH", help="GPT-2 weights: a model.safetensors (see 'python -m gpt download')")
    parser.add_argument("--vocab", metavar="DIR",
                        help="folder with GPT-2's encoder.json and vocab.bpe (with --gpt2; default: the "
                             "folder of the weights)")


def load_model_and_tokenizer(args):
    """(model, tokenizer) from ``--checkpoint`` or ``--gpt2``/``--vocab``; user errors as CLIError."""
    from gpt.checkpoint import CheckpointError
    from gpt.tokenizer import BPETokenizer

    if args.checkpoint:
        # any language-model checkpoint: pretrained, or instruction-tuned (LoRA layers merged back)
        from gpt.finetune.instruct import load_instruct_checkpoint
        try:
            ck = load_instruct_checkpoint(args.checkpoint, merge=True)
        except CheckpointError as e:
            raise CLIError(str(e)) from None
        if ck.tokenizer is None:
            raise CLIError(f"{ck.path}: the checkpoint has no tokenizer.txt")
        return ck.model, ck.tokenizer
    from gpt.weights import load_gpt2

    weights = Path(args.gpt2)
    if not weights.is_file():
        raise CLIError(f"{weights}: no such file (download GPT-2 with 'python -m gpt download gpt2-small')")
    vocab = Path(args.vocab) if args.vocab else weights.parent
    encoder, merges = vocab / "encoder.json", vocab / "vocab.bpe"
    for f in (encoder, merges):
        if not f.is_file():
            raise CLIError(f"{f}: not found; point --vocab at the folder holding GPT-2's encoder.json and vocab.bpe")
    try:
        model = load_gpt2(weights)
    except ValueError as e:
        raise CLIError(str(e)) from None
    return model, BPETokenizer.from_gpt2_files(encoder, merges)
