"""``python -m gpt download NAME [--dir DIR]``: fetch GPT-2's weights, the book's data sets, or a
Hugging Face model (Qwen3, Llama 3.2, Gemma 3) to run with ``--hf DIR``.

Resumable and verified (see :mod:`gpt.download`); run it again after an interruption to continue.
"""
from __future__ import annotations

import argparse

from gpt.cli import CLIError

# Kept here (not imported from gpt.download) so that --help does not import the download machinery.
NAMES = ("gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl", "sms-spam", "instruction-data", "preference-data",
         "book-data", "qwen3-0.6b", "qwen3-1.7b", "llama3.2-1b", "llama3.2-1b-instruct", "gemma3-270m",
         "gemma3-270m-it", "gemma3-1b-it")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "download", help="download GPT-2 weights, the book's data sets or Hugging Face models (resumable, verified)",
        description="Download GPT-2's published weights (model.safetensors + encoder.json + vocab.bpe), "
        "the book's data sets ('book-data' is the reference files the tests and examples "
        "look for in data/book), or a Hugging Face model folder (config, tokenizer, weights; run it with "
        "'python -m gpt generate --hf DIR'). An interrupted download resumes when run again; "
        "files are checked (size, sha256 where published, content) before they get their final name.",
        epilog="Offline machines: set GPT_DOWNLOAD_MIRROR (or --mirror) to a folder or server laid out "
        "as <mirror>/<host>/<path>, e.g. made with 'wget -x URL' elsewhere. Gated Hugging Face models "
        "(Llama, Gemma): accept the licence on the model's page, create a read token at "
        "https://huggingface.co/settings/tokens and set HF_TOKEN; HF_ENDPOINT names another hub.",
    )
    p.add_argument("name", nargs="?", metavar="NAME", help="one of: " + ", ".join(NAMES))
    p.add_argument("--dir", metavar="DIR", help="folder to put the files in (default: data/NAME; data/book for book-data)")
    p.add_argument("--mirror", metavar="URL",
                   help="base URL replacing each file's https://host (default: $GPT_DOWNLOAD_MIRROR)")
    p.add_argument("--force", action="store_true", help="download again even if the files exist")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    p.add_argument("--retries", type=int, default=4, metavar="N",
                   help="retries of a dropped or failed connection, resuming each time (default: 4)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                   help="seconds to wait for a connection or for data (default: 30)")
    p.add_argument("--list", action="store_true", help="list what can be downloaded and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gpt import download as dl

    if args.list:
        width = max(len(name) for name in dl.CATALOG) + 1
        for item in dl.CATALOG.values():
            print(f"{item.name:<{width}} {item.description}")
        return 0
    if not args.name:
        raise CLIError(f"name what to download: one of {', '.join(dl.CATALOG)} (or --list)")
    if args.name not in dl.CATALOG:
        raise CLIError(f"unknown download {args.name!r}; choose one of: {', '.join(dl.CATALOG)}")
    if args.retries < 0 or args.timeout <= 0:
        raise CLIError("--retries must be >= 0 and --timeout > 0")
    try:
        paths = dl.download(args.name, args.dir, mirror=args.mirror, progress=not args.quiet,
                            force=args.force, retries=args.retries, timeout=args.timeout)
    except dl.DownloadError as e:
        raise CLIError(str(e)) from None
    except ValueError as e:  # a bad --mirror
        raise CLIError(str(e)) from None
    for path in paths:
        print(f"{path}  ({path.stat().st_size:,} bytes)")
    return 0
