"""``python -m gpt download NAME [--dir DIR]``: fetch GPT-2's weights or the book's data sets.

Resumable and verified (see :mod:`gpt.download`); run it again after an interruption to continue.
"""
from __future__ import annotations

import argparse

from gpt.cli import CLIError

# Kept here (not imported from gpt.download) so that --help does not import the download machinery.
NAMES = ("gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl", "sms-spam", "instruction-data", "preference-data",
         "book-data")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "download", help="download GPT-2 weights or the book's data sets (resumable, verified)",
        description="Download GPT-2's published weights (model.safetensors + encoder.json + vocab.bpe) "
        "or the book's data sets into a folder ('book-data' is the reference files the tests and examples "
        "look for in data/book). An interrupted download resumes when run again; "
        "files are checked (size, sha256 where published, content) before they get their final name.",
        epilog="Offline machines: set GPT_DOWNLOAD_MIRROR (or --mirror) to a folder or server laid out "
        "as <mirror>/<host>/<path>, e.g. made with 'wget -x URL' elsewhere.",
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
        for item in dl.CATALOG.values():
            print(f"{item.name:<17} {item.description}")
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
