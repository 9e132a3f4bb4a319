"""``python -m gpt experiment NAME``: rerun one of the project's measurements (see gpt.experiments)."""
from __future__ import annotations

import argparse
from pathlib import Path

from gpt.cli import CLIError
from gpt.cli.common import positive_int

EXPERIMENTS = {
    "recipe": "which pretraining recipe learns most from the default corpus in about 5 minutes",
    "positions": "do relative positions generalise to longer texts? (learned, rope, alibi, t5, none "
                 "trained at T, read at T, 2T, 4T; about 10 minutes)",
    "seq2seq": "why attention: RNN encoder-decoders with and without Bahdanau attention and the "
               "encoder-decoder Transformer, accuracy by input length (about 10 minutes)",
    "retrieval": "does a sentence encoder find the pydoc topic a held-out sentence came from? recall@1/@5 "
                 "and MRR of --encoder DIR, of this project's own MLM-pretrained encoder and of a bag-of-words "
                 "baseline (about 10 minutes)",
    "encoder-vs-decoder": "BERT (CLS, mean pooling) against the GPT (last token, mean pooling) trained from "
                          "scratch with the same budget, on spam/ham and on a task whose evidence sits at both "
                          "ends (about 10 minutes)",
}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "experiment", help="rerun one of the measurements the README reports",
        description="Rerun a measurement. " + "; ".join(f"{k}: {v}" for k, v in EXPERIMENTS.items()) + ". "
                    "Results go to --out (results.csv); a finished part is not redone when run again.")
    p.add_argument("name", choices=tuple(EXPERIMENTS), metavar="NAME", help="one of: " + ", ".join(EXPERIMENTS))
    p.add_argument("--out", metavar="DIR", help="results folder (default: runs/experiment-NAME)")
    p.add_argument("--fast", action="store_true", help="tiny settings that finish in seconds (for tests)")
    p.add_argument("--jobs", type=positive_int, default=1, metavar="N", help="recipe: runs at a time (default: 1)")
    p.add_argument("--only", nargs="+", metavar="CANDIDATE", help="recipe: run only these candidates")
    p.add_argument("--context", type=positive_int, metavar="T", help="positions: the training context (default: 64)")
    p.add_argument("--steps", type=positive_int, metavar="N", help="positions: training steps per scheme (default: 600)")
    p.add_argument("--seeds", type=positive_int, metavar="K", help="positions: seeds per scheme (default: 1)")
    p.add_argument("--encoder", metavar="DIR", help="retrieval: a sentence-transformers folder (all-MiniLM-L6-v2)")
    mlm = p.add_mutually_exclusive_group()
    mlm.add_argument("--mlm-checkpoint", metavar="DIR",
                     help="retrieval: the own encoder from this 'pretrain --arch bert' run instead of pretraining one")
    mlm.add_argument("--mlm-steps", type=positive_int, metavar="N",
                     help="retrieval: steps of the own encoder's pretraining (default: 600)")
    mlm.add_argument("--no-mlm", action="store_true", help="retrieval: leave out the own MLM encoder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out or f"runs/experiment-{args.name}")
    if out.exists() and not out.is_dir():
        raise CLIError(f"{out} is a file; pass a folder with --out")
    if args.name == "seq2seq":
        from gpt.experiments import seq2seq

        try:
            return seq2seq.main(out, fast=args.fast)
        except RuntimeError as e:
            raise CLIError(str(e)) from None
    if args.name == "recipe":
        from gpt.experiments import recipe

        candidates = recipe.FAST_CANDIDATES if args.fast else recipe.CANDIDATES
        unknown = sorted(set(args.only or ()) - set(candidates))
        if unknown:
            raise CLIError(f"unknown candidate {unknown[0]!r}; choose from: {', '.join(candidates)}")
        if args.only:
            candidates = {name: options for name, options in candidates.items() if name in args.only}
        try:
            rows = recipe.run_sweep(out, candidates, jobs=args.jobs, say=lambda line: print(line, flush=True))
        except RuntimeError as e:
            raise CLIError(str(e)) from None
        chosen = recipe.choose(rows)
        print(recipe.table(rows, chosen))
        print(f"chosen: {chosen['name']}" if chosen else
              f"no candidate ran within {recipe.MAX_SECONDS:.0f} s with a gap of at most {recipe.MAX_GAP} nats")
        print(f"results: {out / 'results.csv'}")
    elif args.name == "positions":
        run_positions(args, out)
    elif args.name == "encoder-vs-decoder":
        run_encoder_decoder(args, out)
    elif args.name == "retrieval":
        from gpt.experiments import retrieval

        if args.encoder and not Path(args.encoder).is_dir():
            raise CLIError(f"encoder folder not found: {args.encoder} (give a sentence-transformers folder)")
        if args.mlm_checkpoint:
            from gpt.checkpoint import CheckpointError, load_checkpoint

            try:
                arch = getattr(load_checkpoint(args.mlm_checkpoint, load_training_state=False).config, "arch", None)
            except CheckpointError as e:
                raise CLIError(str(e)) from None
            if arch != "bert":
                raise CLIError(f"{args.mlm_checkpoint}: not an encoder (pretrain one with 'python -m gpt pretrain "
                               "--arch bert')")
        try:
            rows = retrieval.run_experiment(out, args.encoder, fast=args.fast, say=lambda line: print(line, flush=True),
                                            mlm=not args.no_mlm, mlm_checkpoint=args.mlm_checkpoint,
                                            mlm_steps=args.mlm_steps)
        except RuntimeError as e:
            raise CLIError(str(e)) from None
        print(retrieval.table(rows))
        print(f"results: {out / 'results.csv'}")
    return 0


def run_positions(args: argparse.Namespace, out: Path) -> None:
    import dataclasses
    import time

    from gpt.experiments import positions

    settings = positions.FAST if args.fast else positions.DEFAULT
    chosen = {k: v for k, v in (("context", args.context), ("steps", args.steps), ("seeds", args.seeds)) if v}
    settings = dataclasses.replace(settings, **chosen)
    started = time.perf_counter()
    try:
        results = positions.run_experiment(out, settings, say=lambda line: print(line, flush=True))
    except ValueError as e:
        raise CLIError(str(e)) from None
    print(f"held-out loss (nats per token), trained at {settings.context} tokens, windows of 1x, 2x, 4x that:")
    print(positions.table(results, settings.context))
    print("the same by position in the window (the longest window each scheme was read at):")
    print(positions.bands_table(results, settings.context))
    print(f"results: {out / 'results.csv'}")
    if positions.plot(results, settings.context, out / "positions.png"):
        print(f"plot: {out / 'positions.png'}")
    else:
        print("plot: not drawn (pip install matplotlib)")
    print(f"wall time {time.perf_counter() - started:.0f} s")


def run_encoder_decoder(args: argparse.Namespace, out: Path) -> None:
    import time

    from gpt.experiments import encoder_decoder

    settings = encoder_decoder.FAST if args.fast else encoder_decoder.DEFAULT
    started = time.perf_counter()
    try:
        results, floors = encoder_decoder.run(out, settings, say=lambda line: print(line, flush=True))
    except RuntimeError as e:
        raise CLIError(str(e)) from None
    print(f"test accuracy after {settings.steps} steps of {settings.batch_size} texts, trained from scratch:")
    print(encoder_decoder.table(results, floors))
    print(f"results: {out / 'results.csv'}")
    print(f"wall time {time.perf_counter() - started:.0f} s")
