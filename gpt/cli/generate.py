"""``python -m gpt generate`` and ``python -m gpt evaluate``: use a trained model."""
from __future__ import annotations

import argparse
import codecs
import math
import sys

from gpt.cli import CLIError
from gpt.cli.common import (add_model_source, add_rag_options, load_model_and_tokenizer, non_negative_float,
                            open_retriever, positive_int, probability, retrieve)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "generate", help="continue a prompt with a trained model (streams the text)",
        description="Continue --prompt with a model from a checkpoint, GPT-2's weights or a Hugging Face "
                    "model folder (--hf). Temperature 0 is greedy decoding.")
    add_model_source(p, hf=True)
    p.add_argument("--prompt", required=True, help="the text to continue")
    p.add_argument("--max-new-tokens", type=positive_int, default=50, metavar="N", help="default: 50")
    p.add_argument("--temperature", type=non_negative_float, default=0.8, metavar="T",
                   help="0 = greedy; higher = more random (default: 0.8)")
    p.add_argument("--top-k", type=positive_int, default=50, metavar="K", help="sample among the K most likely (default: 50)")
    p.add_argument("--top-p", type=probability, default=None, metavar="P", help="nucleus sampling threshold")
    p.add_argument("--seed", type=int, default=123, help="random seed for sampling (default: 123)")
    p.add_argument("--no-cache", action="store_true", help="do not use the KV cache (slower; same ids)")
    add_rag_options(p, "the prompt")
    p.set_defaults(func=run_generate)

    e = subparsers.add_parser(
        "evaluate", help="loss and perplexity of a model on a text file or prepared token files",
        description="Mean next-token cross-entropy (and its exp, the perplexity) over every "
                    "non-overlapping window of the model's context length in --text, or in the "
                    "validation (or training) tokens of a folder made by 'python -m gpt prepare', read "
                    "through a memory map.")
    add_model_source(e, hf=True)
    source = e.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", nargs="+", metavar="FILE", help="UTF-8 text file(s)")
    source.add_argument("--data", metavar="DIR", help="prepared token files (python -m gpt prepare)")
    e.add_argument("--split", choices=("val", "train"), default="val", help="with --data: which tokens (default: val)")
    e.add_argument("--max-batches", type=positive_int, metavar="N", help="evaluate only N batches (default: all): the first N, or with --data N spread over the split")
    e.add_argument("--batch-size", type=positive_int, default=None, metavar="N",
                   help="windows per batch (default: 8; 1 with --hf, whose models have large vocabularies)")
    add_length_options(e)
    e.set_defaults(func=run_evaluate)


def _model_prompt(args: argparse.Namespace) -> str:
    """The text the model reads: the prompt, after the --rag passages when asked (gpt.rag's format).
    Only the prompt itself is echoed; --show-context shows the passages."""
    retriever = open_retriever(args)
    if retriever is None:
        return args.prompt
    from gpt.rag import generate_prompt

    return generate_prompt(args.prompt, retrieve(args, retriever, args.prompt))


def run_generate(args: argparse.Namespace) -> int:
    import numpy as np

    from gpt.generate import generate

    if getattr(args, "hf", None):
        return _generate_hf(args)
    text = _model_prompt(args)
    model, tokenizer = load_model_and_tokenizer(args)
    ids = tokenizer.encode(text, allowed_special="all")
    if not ids:
        raise CLIError("the prompt is empty")
    if len(ids) > model.cfg.context_length and args.rag:
        print(f"(the passages and prompt take {len(ids)} tokens; the model reads the last "
              f"{model.cfg.context_length})", file=sys.stderr, flush=True)
    ids = ids[-model.cfg.context_length:]
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    out = sys.stdout
    out.write(args.prompt)
    out.flush()

    def stream(new_ids) -> None:
        out.write(decoder.decode(tokenizer.decode_single_token_bytes(int(new_ids[0]))))
        out.flush()

    generate(model, np.asarray([ids]), args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
             top_p=args.top_p, eos_id=tokenizer.special_tokens.get("<|endoftext|>"),
             rng=np.random.default_rng(args.seed), use_cache=not args.no_cache, on_token=stream)
    out.write(decoder.decode(b"", final=True) + "\n")
    return 0


def _generate_hf(args: argparse.Namespace) -> int:
    """generate --hf DIR: the prompt is encoded with the folder's tokenizer.json (with the special
    tokens it adds, such as a beginning-of-text token), generation stops at any of the
    ``eos_token_id`` of generation_config.json, and the text is streamed by decoding everything so
    far and writing what is new (a piece that ends inside a UTF-8 character waits for the rest)."""
    import numpy as np

    from gpt import hf
    from gpt.generate import generate

    text = _model_prompt(args)
    model, tokenizer = load_model_and_tokenizer(args)
    ids = list(tokenizer.encode(text))
    if not ids:
        raise CLIError("the prompt is empty")
    try:
        eos = hf.eos_token_ids(args.hf)
    except ValueError as e:
        raise CLIError(str(e)) from None
    out = sys.stdout
    out.write(args.prompt)
    out.flush()
    new: list[int] = []
    shown = tokenizer.decode(ids, skip_special_tokens=True)

    def stream(new_ids) -> None:
        nonlocal shown
        new.append(int(new_ids[0]))
        text = tokenizer.decode(ids + new, skip_special_tokens=True)
        if not text.endswith("\ufffd") and text.startswith(shown):
            out.write(text[len(shown):])
            out.flush()
            shown = text

    generate(model, np.asarray([ids]), args.max_new_tokens, context_size=len(ids) + args.max_new_tokens,
             temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, eos_id=eos or None,
             rng=np.random.default_rng(args.seed), use_cache=not args.no_cache, on_token=stream)
    text = tokenizer.decode(ids + new, skip_special_tokens=True)
    out.write((text[len(shown):] if text.startswith(shown) else "") + "\n")
    return 0


HF_EVAL_WINDOW = 1024   # evaluate --hf: window length unless --context says otherwise


def run_evaluate(args: argparse.Namespace) -> int:
    from gpt.corpus import load_texts
    from gpt.data import DataLoader, GPTDataset, SpreadWindows
    from gpt.train import calc_loss_loader

    if getattr(args, "hf", None) and args.data:
        raise CLIError("--data holds tokens made by this project's BPE tokenizers; with --hf give --text")
    if args.batch_size is None:   # a batch of 1024 positions x 151,936 logits is already 620 MB
        args.batch_size = 1 if getattr(args, "hf", None) else 8
    model, tokenizer = load_model_and_tokenizer(args)
    if args.data:
        ids = _prepared_tokens(args.data, args.split, tokenizer)
    elif getattr(args, "hf", None):
        ids = tokenizer.encode(load_texts(args.text))     # with the special tokens the model expects first
    else:
        ids = tokenizer.encode(load_texts(args.text), allowed_special="all")
    ctx = model.cfg.context_length
    if getattr(args, "hf", None):   # today's models accept 32k-128k positions: score shorter windows (or --context N)
        ctx = min(ctx, HF_EVAL_WINDOW)
    if len(ids) < 2:
        raise CLIError(f"the text has {len(ids)} token(s); evaluating needs at least 2")
    if args.context or args.stride or args.per_position or args.rope_scaling:
        return evaluate_at_length(args, model, ids)
    window = min(ctx, len(ids) - 1)
    dataset = GPTDataset(ids, window, window)
    if args.data and args.max_batches is not None:   # spread over the whole split, not its start
        dataset = SpreadWindows(dataset, args.max_batches * args.batch_size)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False, drop_last=False)
    model.eval()
    import minigrad as mg

    with mg.no_grad():
        loss = calc_loss_loader(loader, model, args.max_batches)
    windows = len(loader.dataset) if args.max_batches is None else min(len(loader.dataset), args.max_batches * args.batch_size)
    print(f"tokens {len(ids):,}  windows {windows} of {window}")
    print(f"loss {loss:.4f}  perplexity {math.exp(loss):.2f}")
    return 0


def _prepared_tokens(directory: str, split: str, tokenizer):
    """The ``split`` ids of prepared token files, memory-mapped [n_tokens]; the files must have been
    made with the model's tokenizer (same merges, byte order and special tokens)."""
    from gpt.token_files import TokenFilesError, open_token_files

    try:
        prepared = open_token_files(directory)
    except TokenFilesError as e:
        raise CLIError(str(e)) from None
    theirs = prepared.tokenizer
    if (theirs.merges, theirs.special_tokens, theirs.decode_bytes(range(256))) != (
            tokenizer.merges, tokenizer.special_tokens, tokenizer.decode_bytes(range(256))):
        raise CLIError(f"{prepared.directory} was tokenized with another tokenizer than the model's; prepare the "
                       "text with the model's (python -m gpt prepare --tokenizer CHECKPOINT)")
    return prepared.tokens(split)


# ---------------------------------------------------------------------- evaluate at any length (positions)
def add_length_options(e: argparse.ArgumentParser) -> None:
    """evaluate's options for reading windows of another length than the model was trained at."""
    e.add_argument("--context", type=positive_int, metavar="N",
                   help="windows of N tokens (default: the model's context length); longer ones need "
                        "positions without a table (rope, alibi, t5, none)")
    e.add_argument("--stride", type=positive_int, metavar="S",
                   help="start a window every S tokens and score its last S targets (default: N, non-overlapping)")
    e.add_argument("--per-position", action="store_true", help="also print the mean loss at each position of a window")
    e.add_argument("--rope-scaling", metavar="KIND:FACTOR",
                   help="rope models: linear:4 (position interpolation) or ntk:4 (NTK-aware base) for longer windows")


def evaluate_at_length(args: argparse.Namespace, model, ids) -> int:
    """``evaluate --context N [--stride S] [--per-position] [--rope-scaling KIND:F]``."""
    import numpy as np

    from gpt.positions import rope_scaling_from_string
    from gpt.train import evaluate_at_length as evaluate

    window = args.context or model.cfg.context_length
    try:
        if args.rope_scaling:
            model.set_rope_scaling(rope_scaling_from_string(args.rope_scaling))
        r = evaluate(model, np.asarray(ids), window, stride=args.stride, batch_size=args.batch_size)
    except ValueError as e:
        raise CLIError(str(e)) from None
    trained = model.cfg.context_length
    print(f"tokens {r['tokens']:,} scored  windows {r['windows']} of {window} "
          f"(trained at {trained}{', ' + args.rope_scaling if args.rope_scaling else ''})")
    if args.per_position and r["per_position"] is not None:
        per = r["per_position"]
        step = max(1, len(per) // 16)
        print("positions  loss")
        for start in range(0, len(per), step):
            print(f"{start:>4}-{min(start + step, len(per)) - 1:<4}  {per[start:start + step].mean():.4f}")
    elif args.per_position:
        print("(no loss per position with a stride shorter than the window: windows overlap)")
    print(f"loss {r['loss']:.4f}  perplexity {math.exp(r['loss']):.2f}")
    return 0
