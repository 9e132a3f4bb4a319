"""``python -m gpt chat``: talk to a model, turn after turn, with the answers streamed as they are
written and the conversation's KV cache kept between turns (the work is :class:`gpt.chat.ChatSession`'s;
this module reads lines and prints pieces).

Models: ``--hf DIR`` (a Hugging Face folder: config.json, safetensors, tokenizer.json; its chat
style is read from its template), ``--checkpoint DIR`` (a run of ``finetune-instruct`` or
``finetune-dpo``, in the book's alpaca format) or ``--gpt2`` weights.

On a terminal: a prompt, commands (``/help``), Ctrl-C stops the answer being written (at the prompt,
a second Ctrl-C or Ctrl-D leaves). From a pipe: one message per line in, one answer per line out
(line breaks inside an answer written as ``\\n``, backslashes as ``\\\\``); commands work there too.
``--prompt TEXT`` answers one message and exits. Notes and ``--stats`` go to stderr.

``--rag INDEX`` retrieves the ``--rag-k`` passages nearest each message from an index made by
``python -m gpt index`` and sends them with it, as one user message in gpt.rag's format ("Use these
passages ... [1] (source) text ... Question: the message"); ``--show-context`` prints them to stderr.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from gpt.cli import CLIError
from gpt.cli.common import (add_model_source, add_rag_options, non_negative_float, open_retriever, positive_int,
                            probability, retrieve)

HELP = """commands:
  /reset           forget the conversation (the system message stays)
  /system TEXT     set the system message (no TEXT: none); the conversation is read again with it
  /temperature X   sampling temperature (0: greedy)
  /help            this list
  /quit            leave (or Ctrl-D; Ctrl-C stops an answer)"""


#: The chat styles of gpt.chat.templates.STYLES (named here so that --help imports nothing).
STYLE_NAMES = ("chatml", "llama3", "gemma", "alpaca")


def register(subparsers) -> None:
    c = subparsers.add_parser(
        "chat", help="talk with a model: a Hugging Face folder (--hf) or a finetune-instruct run",
        description="A multi-turn chat that streams the answers and keeps the conversation's KV cache between "
                    "turns (only the new message is read). --hf DIR loads a Hugging Face model folder and reads "
                    "its chat format from its template; --checkpoint DIR takes a run of finetune-instruct or "
                    "finetune-dpo (the book's alpaca prompt, one instruction at a time). On a terminal, type "
                    "/help for commands; from a pipe it answers each line of input with one line of output. "
                    "Temperature 0 (the default) is greedy decoding.")
    add_model_source(c, required=False, checkpoint_help="a checkpoint written by finetune-instruct or finetune-dpo",
                     hf=True)
    c.add_argument("--style", choices=STYLE_NAMES,
                   help="the chat format (default: read from the --hf folder's template; alpaca for --checkpoint)")
    c.add_argument("--system", metavar="TEXT", help="a system message (alpaca: replaces the preamble)")
    c.add_argument("--think", action=argparse.BooleanOptionalAction, default=None,
                   help="chatml (Qwen3): --no-think asks for answers without reasoning first (enable_thinking=False)")
    c.add_argument("--prompt", metavar="TEXT", help="answer this one message and exit")
    c.add_argument("--input", metavar="TEXT", default="",
                   help="alpaca: the optional input part of the prompt, for --prompt and every line")
    c.add_argument("--max-new-tokens", type=positive_int, default=256, metavar="N",
                   help="longest answer (default: 256)")
    c.add_argument("--temperature", type=non_negative_float, default=0.0, metavar="T",
                   help="0 = greedy (the default); higher = more random")
    c.add_argument("--top-k", type=positive_int, metavar="K", help="sample among the K most likely tokens")
    c.add_argument("--top-p", type=probability, metavar="P", help="nucleus sampling threshold")
    c.add_argument("--seed", type=int, default=123, help="random seed for sampling (default: 123)")
    c.add_argument("--context", type=positive_int, metavar="N",
                   help="tokens of conversation to keep (default: the model's context length, at most 4096); "
                        "older turns are dropped beyond it")
    c.add_argument("--stats", action="store_true", help="print prefill and decode tokens/s after each answer")
    add_rag_options(c, "each message")
    c.set_defaults(func=run_chat)


# ---------------------------------------------------------------------- loading
def _style(args) -> tuple[str, dict]:
    """The chat style and its template options, known before any weights load: --style, else the
    --hf folder's template (or config.json), else alpaca; --think and --input checked against it."""
    from gpt.chat import detect_chat_style

    style, options = args.style, {}
    if not style and args.hf:
        if not Path(args.hf).is_dir():
            return None, {}                # (loading says what is wrong with the folder)
        style, options = detect_chat_style(args.hf)
    elif not style:
        style = "alpaca"
    if args.think is not None:
        if style != "chatml":
            raise CLIError(f"--think/--no-think is for the chatml style (Qwen3), not {style}")
        options["enable_thinking"] = args.think
    if args.input and style != "alpaca":
        raise CLIError(f"--input is the alpaca prompt's input part; the {style} style has none")
    return style, options


def _load(args):
    """(model, tokenizer, end ids the folder declares, what it is) from the options."""
    from gpt.chat import eos_token_ids

    if args.hf:
        from gpt.cli.common import load_hf_folder

        model, tokenizer = load_hf_folder(args.hf, args.context)
        return model, tokenizer, eos_token_ids(args.hf), str(args.hf)
    if args.checkpoint:
        from gpt.cli.common import open_checkpoint
        from gpt.finetune.instruct import load_instruct_checkpoint

        ck = open_checkpoint(load_instruct_checkpoint, args.checkpoint)   # LoRA layers as they were trained
        return ck.model, ck.tokenizer, [], str(ck.path)
    from gpt.cli.common import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(args)
    return model, tokenizer, [], args.gpt2


def _session(args):
    from gpt.chat import ChatSession, stop_token_ids

    if not (args.hf or args.checkpoint or args.gpt2):
        raise CLIError("say which model to talk to: --hf DIR (a Hugging Face folder), --checkpoint DIR (from "
                       "finetune-instruct) or --gpt2 model.safetensors")
    if args.hf and args.vocab:
        raise CLIError("--vocab goes with --gpt2; an --hf folder has its own tokenizer.json")
    style, options = _style(args)
    model, tokenizer, eos_ids, source = _load(args)
    session = ChatSession(model, tokenizer, style, options=options, system=args.system,
                          temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed,
                          max_new_tokens=args.max_new_tokens, stop_ids=stop_token_ids(style, tokenizer, eos_ids),
                          context_length=args.context)
    return session, source


# ---------------------------------------------------------------------- printing an answer
class _Trim:
    """Pieces of text in, the same text without its leading and trailing whitespace out (trailing
    whitespace is held back until more text follows it)."""

    def __init__(self):
        self.started, self.held = False, ""

    def __call__(self, piece: str) -> str:
        if not self.started:
            piece = piece.lstrip()
            if not piece:
                return ""
            self.started = True
        text = self.held + piece
        body = text.rstrip()
        self.held = text[len(body):]
        return body


def _one_line(piece: str) -> str:
    return piece.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")


def _answer(session, text: str, fields: dict, stats: bool, one_line: bool) -> None:
    """Stream the answer to ``text`` to stdout, end it with a line break, and print notes (turns
    dropped, the context full, a Ctrl-C) and --stats on stderr. Ctrl-C stops the answer only."""
    from gpt.chat import ContextFullError

    out, trim = sys.stdout, _Trim()
    try:
        pieces = session.send(text, **fields)
    except ContextFullError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        out.write("\n")
        out.flush()
        return
    s = session.last_stats
    if s.dropped_turns:
        print(f"(the conversation outgrew the context of {session.context_length} tokens: dropped the oldest "
              f"{s.dropped_turns} turn{'s' if s.dropped_turns > 1 else ''})", file=sys.stderr, flush=True)
    interrupted = False
    try:
        with contextlib.closing(pieces):
            for piece in pieces:
                piece = trim(piece)
                out.write(_one_line(piece) if one_line else piece)
                out.flush()
    except KeyboardInterrupt:
        interrupted = True
    out.write("\n")
    out.flush()
    s = session.last_stats
    if interrupted:
        print("(stopped)", file=sys.stderr, flush=True)
    elif s.stop == "context":
        print(f"(the context of {session.context_length} tokens is full: the answer was cut; the next message "
              "drops the oldest turns)", file=sys.stderr, flush=True)
    if stats:
        print(f"[prefill {s.prefill_tokens} tokens ({s.reused_tokens} cached) in {s.prefill_seconds:.2f} s: "
              f"{s.prefill_rate:,.0f} tok/s | decode {s.decode_tokens} tokens in {s.decode_seconds:.2f} s: "
              f"{s.decode_rate:,.1f} tok/s | {s.stop or 'stopped'}]", file=sys.stderr, flush=True)


def _command(session, line: str) -> bool:
    """Carry out a /command; False for /quit."""
    name, _, rest = line.partition(" ")
    rest = rest.strip()
    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    if name in ("/quit", "/exit"):
        return False
    if name == "/help":
        say(HELP)
    elif name == "/reset":
        session.reset()
        say("(conversation cleared)")
    elif name == "/system":
        session.system = rest or None
        say(f"(system message: {rest!r})" if rest else "(no system message)")
    elif name == "/temperature":
        try:
            value = non_negative_float(rest)
        except argparse.ArgumentTypeError as e:
            say(f"/temperature: {e}")
        else:
            session.temperature = value
            say(f"(temperature {value:g})")
    else:
        say(f"unknown command {name}; /help lists them")
    return True


# ---------------------------------------------------------------------- the loop
def _asker(args):
    """The user message for a line: the line, or with --rag the passages, instruction and question."""
    retriever = open_retriever(args)          # before any weights load: a bad index fails at once
    if retriever is None:
        return lambda text: text
    from gpt.rag import chat_message

    return lambda text: chat_message(text, retrieve(args, retriever, text))


def run_chat(args: argparse.Namespace) -> int:
    if args.prompt is not None and not args.prompt.strip():
        raise CLIError("the prompt is empty")
    ask = _asker(args)
    session, source = _session(args)
    fields = {"input": args.input} if args.input else {}
    if args.prompt is not None:
        _answer(session, ask(args.prompt.strip()), fields, args.stats, one_line=False)
        return 0
    interactive = sys.stdin.isatty()
    if interactive:
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (importing it gives input() line editing and history)
        print(f"chat with {source} ({session.style.name} style, up to {session.context_length} tokens of "
              "conversation); /help for commands, Ctrl-D to leave", file=sys.stderr)
    pressed = False                       # Ctrl-C once at the prompt
    while True:
        try:
            line = input("> ") if interactive else sys.stdin.readline()
        except KeyboardInterrupt:
            try:
                if pressed:
                    raise KeyboardInterrupt
                pressed = True
                print("\n(press Ctrl-C again or Ctrl-D to leave)", file=sys.stderr, flush=True)
            except KeyboardInterrupt:     # the second one, even while the hint is being written
                print(file=sys.stderr)
                return 0
            continue
        except EOFError:
            if interactive:
                print(file=sys.stderr)
            return 0
        if not interactive and not line:  # end of the input
            return 0
        pressed = False
        line = line.strip()
        if not line:
            continue
        if line.startswith("/"):
            if not _command(session, line):
                return 0
            continue
        _answer(session, ask(line), fields, args.stats, one_line=not interactive)
