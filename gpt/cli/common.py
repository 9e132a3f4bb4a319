"""Helpers shared by the command-line commands: argument types and loading a model to use."""
from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
from pathlib import Path

from gpt.cli import CLIError


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected a number >= {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    return _whole_number(text, 1)


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number >= 0."""
    return _whole_number(text, 0)


def non_negative_float(text: str) -> float:
    """An argparse type: a finite number >= 0 (``inf`` and ``nan`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text}")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a number > 0."""
    value = non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def _at_most_one(text: str, what: str) -> float:
    value = non_negative_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"expected {what} between 0 and 1, got {text}")
    return value


def probability(text: str) -> float:
    """An argparse type: a number from 0 to 1."""
    return _at_most_one(text, "a number")


def fraction(text: str) -> float:
    """An argparse type: a share of the data, from 0 to 1."""
    return _at_most_one(text, "a fraction")


def fraction_below_one(text: str) -> float:
    """An argparse type: a share of the data from 0 up to, but not including, 1 (something must be left)."""
    value = fraction(text)
    if value == 1:
        raise argparse.ArgumentTypeError(f"expected a fraction at least 0 and below 1, got {text}")
    return value


def add_model_source(parser: argparse.ArgumentParser, required: bool = True,
                     checkpoint_help: str = "a checkpoint written by 'python -m gpt pretrain'",
                     hf: bool = False, hf_help: str | None = None) -> None:
    """--checkpoint DIR, --gpt2 model.safetensors with --vocab DIR (GPT-2's tokenizer files), or
    with ``hf``, --hf DIR (a Hugging Face model folder: config.json, weights, tokenizer.json)."""
    src = parser.add_mutually_exclusive_group(required=required)
    src.add_argument("--checkpoint", metavar="DIR", help=checkpoint_help)
    src.add_argument("--gpt2", metavar="PATH", help="GPT-2 weights: a model.safetensors (see 'python -m gpt download')")
    if hf:
        src.add_argument("--hf", metavar="DIR",
                         help=hf_help or "a Hugging Face model folder (config.json, model.safetensors or shards, "
                              "tokenizer.json): GPT-2, Llama 3, Qwen3, Qwen3-MoE or Gemma 3, e.g. from "
                              "'python -m gpt download qwen3-0.6b'")
    parser.add_argument("--vocab", metavar="DIR",
                        help="folder with GPT-2's encoder.json and vocab.bpe (with --gpt2; default: the "
                             "folder of the weights)")


def add_rag_options(parser: argparse.ArgumentParser, what: str) -> None:
    """--rag INDEX, --rag-k N, --encoder DIR and --show-context (generate, chat): see gpt.rag."""
    parser.add_argument("--rag", metavar="INDEX",
                        help=f"retrieval-augmented: put the passages of this index (python -m gpt index) nearest "
                             f"to {what} before it (the format is in gpt/rag.py)")
    parser.add_argument("--rag-k", type=positive_int, default=3, metavar="N", help="with --rag: passages to add (default 3)")
    parser.add_argument("--encoder", metavar="DIR",
                        help="with --rag: the index's sentence encoder folder, if it moved since the index was made")
    parser.add_argument("--show-context", action="store_true",
                        help="with --rag: print the passages retrieved, with their cosines and sources, to stderr")


def open_retriever(args):
    """The gpt.rag.Retriever of --rag (None without it); options that need --rag check they have it."""
    if not args.rag:
        for flag, given in (("--encoder", args.encoder), ("--show-context", args.show_context)):
            if given:
                raise CLIError(f"{flag} goes with --rag INDEX")
        return None
    from gpt.rag import Retriever

    try:
        return Retriever.open(args.rag, args.encoder)
    except ValueError as e:
        raise CLIError(str(e)) from None


def retrieve(args, retriever, question: str) -> list:
    """The --rag-k passages for ``question``, described on stderr with --show-context."""
    from gpt.rag import describe

    hits = retriever.retrieve(question, args.rag_k)
    if args.show_context:
        print(describe(hits), file=sys.stderr, flush=True)
    return hits


def open_checkpoint(load, path, **options):
    """``load(path, **options)`` with one of gpt's checkpoint loaders; a damaged or missing checkpoint,
    or one without its tokenizer, is a one-line CLIError."""
    from gpt.checkpoint import CheckpointError

    try:
        ck = load(path, **options)
    except CheckpointError as e:
        raise CLIError(str(e)) from None
    if ck.tokenizer is None:
        raise CLIError(f"{ck.path}: the checkpoint has no tokenizer (tokenizer.txt or tokenizer.json)")
    return ck


def overlay_options(settings: dict, args, names, saved: dict | None, may_change) -> dict:
    """Put the options given on the command line (those not None) among ``names`` over ``settings``.
    When resuming a run whose settings were ``saved``, an option outside ``may_change`` must keep the
    run's value: anything else would be ignored or would break the exact continuation."""
    for name in names:
        value = getattr(args, name, None)
        if value is None:
            continue
        if saved is not None and name not in may_change and value != saved.get(name):
            allowed = ", ".join("--" + n.replace("_", "-") for n in may_change)
            raise CLIError(f"--{name.replace('_', '-')} cannot change when resuming (the run used "
                           f"{saved.get(name)}); only {allowed} can")
        settings[name] = value
    return settings


def run_folder(args) -> Path:
    """Where a training command saves: the run being resumed (given a step folder, the run that holds
    it), or ``--out`` for a new run, which must not already hold one (it would be overwritten)."""
    from gpt.checkpoint import run_directory

    if args.resume:
        return run_directory(args.resume)
    out = Path(args.out)
    if (out / "latest").exists():
        raise CLIError(f"{out} already holds a training run; continue it with --resume {out}, "
                       "or pass another --out (or delete the folder)")
    return out


def load_hf_folder(folder: str, context_length: int | None = None, encoders: bool = False):
    """(model, tokenizer) of a Hugging Face model folder (``context_length``: see gpt.hf.load_model);
    a missing folder, config.json, weights or tokenizer.json, or an unsupported model, is a one-line
    CLIError. For every command with ``--hf`` (generate, evaluate, chat, serve); only with ``encoders``
    may it hold a BERT encoder (serve shows those; the others write text)."""
    from gpt import hf
    from gpt.tokenizer import HFTokenizer

    path = Path(folder)
    if not path.is_dir():
        raise CLIError(f"{path}: no such folder (download a model with e.g. 'python -m gpt download qwen3-0.6b')")
    if not (path / "config.json").is_file():
        raise CLIError(f"{path}: no config.json; --hf wants a Hugging Face model folder (config.json, "
                       "model.safetensors, tokenizer.json)")
    if not (path / "tokenizer.json").is_file():
        raise CLIError(f"{path}: no tokenizer.json; --hf needs the model's tokenizer beside its weights")
    try:                                  # the small file first: a bad one fails before gigabytes are read
        tokenizer = HFTokenizer.from_file(path)
    except (ValueError, OSError) as e:
        where = str(path / "tokenizer.json")
        raise CLIError(str(e) if str(e).startswith(where) else f"{where}: {e}") from None
    try:
        model = hf.load_model(path, context_length=context_length)
    except (ValueError, OSError) as e:
        raise CLIError(str(e)) from None
    if not encoders and not hasattr(model, "new_kv_cache"):   # gpt.hf.load_model also reads BERT encoders
        raise CLIError(f"{path} holds an encoder ({type(model).__name__}), not a model that writes text; --hf here "
                       "wants a decoder (Llama, Qwen3, Gemma 3, GPT-2); use an encoder with index --encoder "
                       "or finetune-classify --arch bert")
    return model, tokenizer


def load_model_and_tokenizer(args, encoders: bool = False):
    """(model, tokenizer) from ``--checkpoint``, ``--gpt2``/``--vocab`` or ``--hf``; user errors as CLIError.
    ``encoders``: an --hf folder may hold a BERT encoder (the look-inside page shows those too)."""
    from gpt.tokenizer import BPETokenizer

    if getattr(args, "hf", None):
        if getattr(args, "vocab", None):
            raise CLIError("--vocab goes with --gpt2; an --hf folder has its own tokenizer.json")
        return load_hf_folder(args.hf, encoders=encoders)
    if args.checkpoint:
        # any language-model checkpoint: pretrained, or instruction-tuned (LoRA layers merged back)
        from gpt.finetune.instruct import load_instruct_checkpoint
        ck = open_checkpoint(load_instruct_checkpoint, args.checkpoint, merge=True)
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


# ---------------------------------------------------------------------- running a training command
class Progress:
    """One live line on a terminal (rewritten with \\r); occasional plain lines otherwise."""

    def __init__(self, total: int, quiet: bool):
        self.total, self.quiet = total, quiet
        self.tty = sys.stderr.isatty()
        self.last_print = 0.0
        self.window: list[tuple[float, int]] = []

    def step(self, trainer, loss: float) -> None:
        if self.quiet:
            return
        s = trainer.state
        now = time.perf_counter()
        self.window = (self.window + [(now, s.tokens_seen)])[-20:]
        (t0, n0), (t1, n1) = self.window[0], self.window[-1]
        tok_s = (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0
        steps_s = (len(self.window) - 1) / (t1 - t0) if t1 > t0 else 0.0
        eta = (self.total - s.step) / steps_s if steps_s else float("nan")
        epoch = (s.step - 1) // len(trainer.train_loader) + 1        # the pass this step belonged to
        note = trainer.progress_note() + "  " if hasattr(trainer, "progress_note") else ""   # e.g. MLM accuracy
        line = (f"step {s.step}/{self.total}  epoch {epoch}  loss {loss:.3f}  {note}"
                f"lr {trainer.lr_at(max(s.step - 1, 0)):.2e}  {tok_s:,.0f} tok/s  ETA {duration(eta)}")
        if self.tty:
            sys.stderr.write("\r" + line.ljust(100))
            sys.stderr.flush()
        elif now - self.last_print > 30 or s.step == self.total:
            print(line, flush=True)
            self.last_print = now

    def clear(self) -> None:
        if self.tty and not self.quiet:
            sys.stderr.write("\r" + " " * 100 + "\r")
            sys.stderr.flush()


def duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


def write_logs(out: Path, state) -> None:
    """log.json (the whole history) and log.csv (one row per evaluation), both atomically."""
    from gpt.atomic import write_text_atomic

    write_text_atomic(out / "log.json", json.dumps(state.to_dict()) + "\n")
    metrics = getattr(state, "metrics", {}) or {}      # e.g. the masked-token accuracies of an MLM run
    rows = [",".join(["step,tokens_seen,train_loss,val_loss,lr", *metrics])]
    for i, (step, tokens, tr, va) in enumerate(zip(state.eval_steps, state.track_tokens_seen, state.train_losses,
                                                   state.val_losses)):
        lr = state.track_lrs[step - 1] if 0 < step <= len(state.track_lrs) else float("nan")
        extra = "".join(f",{values[i]:.6f}" if i < len(values) else ",nan" for values in metrics.values())
        rows.append(f"{step},{tokens},{tr:.6f},{va:.6f},{lr:.6g}{extra}")
    write_text_atomic(out / "log.csv", "\n".join(rows) + "\n")


class RunSaver:
    """Saves a training command's checkpoint (``save_checkpoint()``, which returns its folder) and
    then its logs, and remembers the newest checkpoint of the run (``last``: at first the one it
    resumed from, if any), which is where a failed run points the user."""

    def __init__(self, out: Path, save_checkpoint, resumed_from=None):
        self.out, self.save_checkpoint = out, save_checkpoint
        self.last = resumed_from.path if resumed_from is not None else None

    def save(self, trainer) -> Path:
        self.last = self.save_checkpoint()
        write_logs(self.out, trainer.state)
        return self.last


def train_until_done(trainer, progress: Progress, on_eval, saver: RunSaver) -> None:
    """Run ``trainer`` as every training command does.

    Ctrl-C asks it to stop after the step in progress (a second Ctrl-C stops at once); NumPy's
    overflow warnings are silenced, since weights that diverge overflow inside the model before the
    loss turns NaN and the trainer reports that itself; a non-finite loss becomes a one-line
    CLIError naming the last good checkpoint (``saver.last``, or that nothing was saved).
    """
    import numpy as np

    from gpt.train import NonFiniteLossError

    def on_sigint(signum, frame):
        if trainer.stop_requested:
            raise KeyboardInterrupt
        trainer.request_stop()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            trainer.run(on_step=progress.step, on_eval=on_eval)
    except NonFiniteLossError as e:
        progress.clear()
        saved = saver.last
        kept = f"the last good checkpoint is {saved}" if saved else "no checkpoint was saved"
        raise CLIError(f"{e}; {kept}") from None
    finally:
        signal.signal(signal.SIGINT, previous)
        progress.clear()


def stopped_early(trainer, total: int, final, command: str, out) -> bool:
    """After a Ctrl-C: say where the checkpoint is and how to continue (the caller exits 130)."""
    if trainer.stop_requested and trainer.state.step < total:
        print(f"interrupted at step {trainer.state.step} of {total}: checkpoint saved to {final}; "
              f"continue with: python -m gpt {command} --resume {out}", file=sys.stderr)
        return True
    return False


def restore_training_state(ck, optimizer, trainer, total: int, out, more_flag: str) -> None:
    """Load a resumed run's optimizer and trainer state; one-line errors if it does not fit or is
    already complete (``more_flag`` names the option that extends a run, e.g. ``--steps``)."""
    try:
        optimizer.load_state_dict(ck.optimizer_state)
        trainer.load_state_dict(ck.trainer_state)
    except (ValueError, KeyError, TypeError) as e:
        raise CLIError(f"{ck.path}: the training state does not fit this run ({e})") from None
    if trainer.state.step >= total:
        raise CLIError(f"the run in {out} already has {trainer.state.step} steps; pass a larger {more_flag} to continue")
