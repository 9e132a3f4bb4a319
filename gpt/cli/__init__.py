"""The ``python -m gpt`` command line.

Each subcommand lives in its own module of this package and exposes ``register(subparsers)``, which
adds its parser and sets ``func`` to a function taking the parsed arguments. Command modules import
their heavy dependencies inside that function so that ``--help`` stays instant.

Errors a user can act on (a missing file, a bad value, a damaged checkpoint) end the program with a
one-line message on stderr and exit code 2; Ctrl-C exits with 130. Set ``GPT_DEBUG=1`` to see the
full traceback instead.
"""
from __future__ import annotations

import argparse
import os
import sys
from importlib import import_module

# Modules of gpt.cli that provide subcommands, in the order --help lists them.
COMMANDS: list[str] = ["pretrain", "prepare", "generate", "tokenizer", "bench", "download", "finetune_classify",
                       "finetune_instruct", "chat", "finetune_dpo", "experiment", "index", "serve"]


class CLIError(Exception):
    """An error the user can fix; printed as one line, never as a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gpt",
        description="Build a Large Language Model (From Scratch), in NumPy: tokenize, pretrain, "
        "generate, fine-tune.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        import_module(f"gpt.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    if os.environ.get("GPT_DEBUG"):
        return args.func(args) or 0
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except CLIError as e:
        print(f"error: {e}", file=sys.stderr)
    except FileNotFoundError as e:  # an OS error names the file; our own messages say it all
        print(f"error: file not found: {e.filename}" if e.filename else f"error: {e}", file=sys.stderr)
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
    except Exception as e:  # a bug, not bad input: still one line, with a way to see more
        print(f"error: {type(e).__name__}: {e} (run with GPT_DEBUG=1 for the traceback)", file=sys.stderr)
    return 2
