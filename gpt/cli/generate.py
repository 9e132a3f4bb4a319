"""``python -m gpt generate`` and ``python -m gpt evaluate``: use a trained model."""
from __future__ import annotations

import argparse
import codecs
import math
import sys

from gpt.cli import CLIError
from gpt.cli.common import add_model_source, load_model_and_tokenizer, non_negative_float, positive_int, probability


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "generate", help="continue a prompt with a trained model (streams the text)",
        description="Continue --prompt with a model from a checkpoint or GPT-2's weights. "
                    "Temperature 0 is greedy decoding.")
    add_model_source(p)
    p.add_argument("--prompt", required=True, help="the text to continue")
    p.add_argument("--max-new-tokens", type=positive_int, default=50, metavar="N", help="default: 50")
    p.add_argument("--temperature", type=non_negative_float, default=0.8, metavar="T",
                   help="0 = greedy; higher = more random (default: 0.8)")
    p.add_argument("--top-k", type=positive_int, default=50, metavar="K", help="sample among the K most likely (default: 50)")
    p.add_argument("--top-p", type=probability, default=None, metavar="P", help="nucleus sampling threshold")
    p.add_argument("--seed", type=int, default=123, help="random seed for sampling (default: 123)")
    p.add_argument("--no-cache", action="store_true", help="do not use the KV cache (slower; same ids)")
    p.set_defaults(func=run_generate)

    e = subparsers.add_parser(
        "evaluate", help="loss and perplexity of a model on a text file",
        description="Mean next-token cross-entropy (and its exp, the perplexity) over every "
                    "non-overlapping window of the model's context length in --text.")
    add_model_source(e)
    e.add_argument("--text", required=True, nargs="+", metavar="FILE", help="UTF-8 text file(s)")
    e.add_argument("--batch-size", type=positive_int, default=8, metavar="N", help="default: 8")
    e.set_defaults(func=run_evaluate)


def run_generate(args: argparse.Namespace) -> int:
    import numpy as np

    from gpt.generate import generate

    model, tokenizer = load_model_and_tokenizer(args)
    ids = tokenizer.encode(args.prompt, allowed_special="all")
    if not ids:
        raise CLIError("the prompt is empty")
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


def run_evaluate(args: argparse.Namespace) -> int:
    from gpt.corpus import load_texts
    from gpt.data import DataLoader, GPTDataset
    from gpt.train import calc_loss_loader

    model, tokenizer = load_model_and_tokenizer(args)
    text = load_texts(args.text)
    ids = tokenizer.encode(text, allowed_special="all")
    ctx = model.cfg.context_length
    if len(ids) < 2:
        raise CLIError(f"the text has {len(ids)} token(s); evaluating needs at least 2")
    window = min(ctx, len(ids) - 1)
    loader = DataLoader(GPTDataset(ids, window, window), batch_size=args.batch_size, shuffle=False, drop_last=False)
    model.eval()
    import minigrad as mg

    with mg.no_grad():
        loss = calc_loss_loader(loader, model)
    print(f"tokens {len(ids):,}  windows {len(loader.dataset)} of {window}")
    print(f"loss {loss:.4f}  perplexity {math.exp(loss):.2f}")
    return 0
