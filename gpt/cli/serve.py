"""``python -m gpt serve``: the look-inside page for a model, on a local web server."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gpt.cli import CLIError
from gpt.cli.common import add_model_source, load_model_and_tokenizer, non_negative_int, open_checkpoint

LOOPBACK = ("127.0.0.1", "localhost", "::1")   # as gpt.serve.server.LOOPBACK_NAMES (not imported: --help stays instant)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="a local web page that shows what happens inside a model",
        description="Serve a page (plain HTML and JavaScript, works offline) that shows a model's tokens, "
                    "next-token distribution, streaming generation, attention, logit lens, training curves "
                    "and, for instruction-tuned checkpoints and chat models, a chat; for an encoder (BERT), its "
                    "tokens, attention in both directions, training curves and a fill-mask panel. Stop it with Ctrl-C.")
    add_model_source(p, hf=True, checkpoint_help="a checkpoint of 'python -m gpt pretrain' (also --arch bert, "
                                        "an encoder) or 'finetune-instruct' (the run's folder or one step folder)")
    p.add_argument("--port", type=non_negative_int, default=8000, metavar="N",
                   help="default: 8000; 0 picks a free port")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--log-requests", action="store_true", help="print one line per request")
    p.set_defaults(func=run)


def session_from_args(args: argparse.Namespace):
    """A :class:`gpt.serve.api.Session` for the model the arguments name; a checkpoint brings its run
    (the folder holding its log.csv and the other step folders) and its saved info."""
    from gpt.serve.api import Session

    if getattr(args, "checkpoint", None):
        from gpt.finetune.instruct import load_instruct_checkpoint

        if is_encoder_checkpoint(args.checkpoint):   # pretrain --arch bert: attention, tokens and fill-mask
            ck = open_checkpoint(load_encoder_checkpoint, args.checkpoint)
        else:
            ck = open_checkpoint(load_instruct_checkpoint, args.checkpoint, merge=True)
        folder = ck.path.parent
        run = folder if (folder / "latest").is_file() or (folder / "log.csv").is_file() else None
        return Session(ck.model, ck.tokenizer, source=f"checkpoint {ck.path}", run=run, checkpoint=ck.path,
                       info=ck.info)
    model, tokenizer = load_model_and_tokenizer(args, encoders=True)
    if getattr(args, "hf", None):
        return Session(model, tokenizer, source=f"Hugging Face folder {args.hf}", folder=Path(args.hf))
    return Session(model, tokenizer, source=f"GPT-2 weights {args.gpt2}")


def is_encoder_checkpoint(path) -> bool:
    """Whether the checkpoint at ``path`` holds an encoder (its config's ``arch`` is "bert"); False when
    it cannot be read (the loader then says what is wrong)."""
    import json

    from gpt.checkpoint import CheckpointError, resolve

    try:
        config = json.loads((resolve(path) / "config.json").read_text(encoding="utf-8"))
        return config["model"].get("arch") == "bert"
    except (CheckpointError, OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def load_encoder_checkpoint(path):
    """A masked-language-model encoder's checkpoint (BertForMaskedLM); a classifier is refused."""
    from gpt.checkpoint import CheckpointError, load_checkpoint

    def prepare(model, info) -> None:
        if isinstance(info, dict) and info.get("task") == "classification":
            raise CheckpointError(f"{path}: is a classifier (its output layer gives classes, not tokens); "
                                  "use 'python -m gpt classify', or serve the encoder it started from")

    return load_checkpoint(path, load_training_state=False, prepare=prepare)


def run(args: argparse.Namespace) -> int:
    from gpt.serve.server import make_server

    if args.port > 65535:
        raise CLIError(f"--port must be at most 65535, got {args.port}")
    session = session_from_args(args)
    try:
        server = make_server(session, args.host, args.port, log_requests=args.log_requests)
    except OSError as e:
        raise CLIError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}"
                       + ("; pick another --port (0 picks a free one)" if args.port else "")) from None
    if args.host not in LOOPBACK:
        print(f"warning: listening on {args.host}: anyone who can reach this machine on the network can use "
              "the page and run the model", file=sys.stderr)
    try:                                  # a Ctrl-C right after the URL is shown stops the server too
        print(f"serving {session.source} at {server.url} (Ctrl-C stops)", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0
