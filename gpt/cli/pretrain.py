"""``python -m gpt pretrain``: chapter 5 end to end, from text to a checkpoint you can generate from.

With no arguments it trains a 4,096-token BPE vocabulary and the ``mini`` GPT on the embedded corpus
(CPython's own documentation: the language reference and the standard library's docstrings, see
:mod:`gpt.corpus`), printing a progress line, evaluations and samples, and saving checkpoints into
``runs/pretrain``. Ctrl-C stops after the current step and saves a
checkpoint; ``--resume DIR`` continues it to exactly the weights an uninterrupted run would reach.

``--arch bert`` pretrains an encoder instead, as a masked language model (:mod:`gpt.mlm`): the BPE
vocabulary gets BERT's special tokens, each window is read as [CLS] ... [SEP] with 15% of its tokens
chosen for prediction, and masked-token accuracy is reported beside the loss.
"""
from __future__ import annotations

import argparse
import hashlib
import time
import warnings
from pathlib import Path

from gpt.cli import CLIError
from gpt.corpus import CORPORA   # stdlib only: --help stays instant

from gpt.cli.common import (
    Progress, RunSaver, duration, non_negative_float, non_negative_int, open_checkpoint,
    overlay_options, positive_int, probability, restore_training_state, run_folder, stopped_early,
    train_until_done,
)

POSITION_KINDS_CLI = ("learned", "rope", "alibi", "t5", "none")   # gpt.model.POSITION_KINDS, without importing numpy
# the model families: GPT-2 (the book's GPTModel) and today's decoders (gpt/architectures), each
# with the CPU-sized preset it trains by default (gpt.architectures.MINI_PRESETS, without numpy)
ARCHES_CLI = {"gpt2": "mini", "llama": "llama-mini", "qwen3": "qwen3-mini", "qwen3-moe": "qwen3-moe-mini",
              "gemma3": "gemma3-mini", "bert": "bert-mini"}

DEFAULTS = dict(config="mini", vocab_size=4096, batch_size=8, lr=2e-3, min_lr=1e-4, warmup=50,
                weight_decay=0.1, grad_clip=1.0, eval_every=100, eval_batches=10, seed=123, steps=600)
# every setting a run records in its checkpoint
SETTING_NAMES = (*DEFAULTS, "arch", "n_kv_heads", "context_length", "emb_dim", "n_layers", "n_heads", "drop_rate", "pos_emb", "epochs",
                 "corpus", "text", "tokenizer", "prompt", "data")
# the sample printed at each evaluation: seeded top-k sampling, the same draw at every evaluation
SAMPLE = dict(max_new_tokens=40, temperature=0.8, top_k=40)
PROMPTS = {"docs": "The list", "python-source": "def "}
# what --resume may change; everything else shapes the model, the data order or the optimizer
RESUME_OVERRIDES = ("steps", "epochs", "eval_every", "eval_batches", "prompt", "text", "data")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "pretrain", help="train a tokenizer and a GPT on text (the main job)",
        description="Pretrain a GPT (chapter 5, with appendix D's warmup, cosine decay and clipping). "
                    "Without --text or --data it trains on documentation that ships with CPython (the "
                    "language reference and the standard library's docstrings). Ctrl-C saves a checkpoint; "
                    "--resume continues it exactly.")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--corpus", choices=CORPORA,
                        help="a corpus that ships with Python: docs (the default: the language reference and "
                             "the standard library's docstrings, 1.9 MB) or python-source (its .py files, 8 MB)")
    source.add_argument("--text", nargs="+", metavar="FILE", help="UTF-8 text file(s) to train on instead")
    source.add_argument("--data", metavar="DIR",
                        help="train on the token files of 'python -m gpt prepare' (memory-mapped, for corpora larger "
                             "than memory) instead; the last line then averages --eval-batches batches")
    p.add_argument("--arch", choices=tuple(ARCHES_CLI),
                   help="model family: gpt2 (the book's GPT, the default), or today's llama, qwen3, qwen3-moe or "
                        "gemma3 (gpt/architectures), each starting from its CPU-sized preset; or bert, an encoder "
                        "pretrained as a masked language model (gpt/mlm.py)")
    p.add_argument("--config", metavar="NAME", help=f"model preset (default: {DEFAULTS['config']}, or the --arch's "
                                                    "mini preset; see --list-configs)")
    p.add_argument("--list-configs", action="store_true", help="list the model presets and exit")
    p.add_argument("--context-length", type=positive_int, metavar="N")
    p.add_argument("--emb-dim", type=positive_int, metavar="N")
    p.add_argument("--n-layers", type=positive_int, metavar="N")
    p.add_argument("--n-heads", type=positive_int, metavar="N")
    p.add_argument("--n-kv-heads", type=positive_int, metavar="N",
                   help="key/value heads of grouped-query attention (not for --arch gpt2)")
    p.add_argument("--drop-rate", type=probability, metavar="P")
    p.add_argument("--pos-emb", choices=POSITION_KINDS_CLI,
                   help="how the model knows where a token is (default: learned; see gpt/positions.py)")
    p.add_argument("--vocab-size", type=positive_int, metavar="N",
                   help=f"BPE vocabulary to train (default: {DEFAULTS['vocab_size']})")
    p.add_argument("--tokenizer", metavar="PATH", help="use a saved tokenizer (BPETokenizer.save format) instead of training one")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=positive_int, metavar="N", help=f"optimizer steps in total (default: {DEFAULTS['steps']})")
    length.add_argument("--epochs", type=positive_int, metavar="N", help="passes over the training text instead of --steps")
    p.add_argument("--batch-size", type=positive_int, metavar="N", help=f"default: {DEFAULTS['batch_size']}")
    p.add_argument("--lr", type=non_negative_float, metavar="LR", help=f"peak learning rate (default: {DEFAULTS['lr']})")
    p.add_argument("--min-lr", type=non_negative_float, metavar="LR", help=f"final learning rate (default: {DEFAULTS['min_lr']})")
    p.add_argument("--warmup", type=non_negative_int, metavar="N", help=f"warmup steps (default: {DEFAULTS['warmup']})")
    p.add_argument("--weight-decay", type=non_negative_float, metavar="W", help=f"default: {DEFAULTS['weight_decay']}")
    p.add_argument("--grad-clip", type=non_negative_float, metavar="NORM", help="0 disables (default: 1.0)")
    p.add_argument("--eval-every", type=positive_int, metavar="N", help=f"evaluate, sample and save every N steps (default: {DEFAULTS['eval_every']})")
    p.add_argument("--eval-batches", type=positive_int, metavar="N", help=f"batches per evaluation (default: {DEFAULTS['eval_batches']})")
    p.add_argument("--prompt", default=None, help="start of the sample printed at each evaluation (not for --arch bert)")
    p.add_argument("--out", metavar="DIR", default="runs/pretrain", help="checkpoint folder (default: runs/pretrain)")
    p.add_argument("--resume", metavar="DIR", help="continue the run saved in DIR (up to --steps in total)")
    p.add_argument("--seed", type=int, metavar="N", help=f"default: {DEFAULTS['seed']}")
    p.add_argument("--quiet", action="store_true", help="no progress line and no samples")
    p.set_defaults(func=run)


# ---------------------------------------------------------------------- pieces
def _settings(args: argparse.Namespace, saved: dict | None) -> dict:
    """The run's settings: command-line values over the saved run's (when resuming) over defaults.
    A resumed run may only change what RESUME_OVERRIDES names (its text is checked separately)."""
    if saved is not None:
        saved = dict(saved, arch=saved.get("arch") or "gpt2")    # runs from before --arch trained GPT-2
    base = overlay_options(dict(DEFAULTS, **(saved or {})), args, SETTING_NAMES, saved, RESUME_OVERRIDES)
    if saved and args.epochs is None and args.steps is not None:
        base["epochs"] = None
    base["arch"] = base.get("arch") or "gpt2"
    if saved is None and args.config is None:
        base["config"] = ARCHES_CLI[base["arch"]]
    return base


def _fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _open_prepared(args: argparse.Namespace, settings: dict, ck):
    """``--data DIR``: the token files of ``python -m gpt prepare`` (memory-mapped, never loaded
    whole), checked against the run being resumed by their fingerprint; None without ``--data``."""
    if not settings.get("data"):
        return None
    from gpt.token_files import TokenFilesError, open_token_files

    clash = [f"--{name.replace('_', '-')}" for name in ("text", "tokenizer", "vocab_size") if getattr(args, name) is not None]
    if clash:
        raise CLIError(f"--data cannot be combined with {', '.join(clash)}: the prepared folder holds the text's "
                       "tokens and their tokenizer")
    if ck is not None and not ck.info.get("data_fingerprint"):
        raise CLIError(f"{ck.path}: this run trained on text, not on prepared data; resume it without --data")
    try:
        prepared = open_token_files(settings["data"])
    except TokenFilesError as e:
        raise CLIError(str(e)) from None
    if ck is not None and ck.info["data_fingerprint"] != prepared.fingerprint:
        raise CLIError(f"the data in {prepared.directory} (fingerprint {prepared.fingerprint}) differs from the data "
                       f"this run started with ({ck.info['data_fingerprint']}); pass the same --data")
    if prepared.meta["tokens"]["val"] == 0:
        raise CLIError(f"{prepared.directory} has no validation tokens; prepare it with a --val-fraction above 0")
    return prepared


def _plot(out: Path, state) -> Path | None:
    """loss.png like the book's figure 5.12, if matplotlib is installed (pip install -e '.[plot]')."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(state.track_tokens_seen, state.train_losses, label="Training loss")
    ax.plot(state.track_tokens_seen, state.val_losses, linestyle="-.", label="Validation loss")
    ax.set_xlabel("Tokens seen")
    ax.set_ylabel("Loss")
    ax.legend()
    fig.tight_layout()
    from gpt.atomic import atomic_write

    with atomic_write(out / "loss.png") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
    return out / "loss.png"


# ---------------------------------------------------------------------- the command
def run(args: argparse.Namespace) -> int:
    import minigrad as mg
    from minigrad.optim import AdamW

    from gpt.checkpoint import load_checkpoint, save_checkpoint
    from gpt.corpus import corpus_documents, load_texts, split_documents
    from gpt.data import DataLoader, GPTDataset, SpreadWindows, train_val_split
    from gpt.model import PRESETS, GPTConfig, GPTModel, count_parameters
    from gpt.tokenizer import BPETokenizer
    from gpt.generate import generate, text_to_token_ids, token_ids_to_text
    from gpt.train import Trainer, calc_loss_loader
    from gpt.mlm import SPECIAL_TOKENS as MLM_SPECIAL_TOKENS, MLMTrainer, special_ids as mlm_special_ids

    from gpt.architectures import PRESETS as DECODER_PRESETS, DecoderConfig, build_model
    from gpt.architectures.bert import PRESETS as BERT_PRESETS, BertConfig, BertForMaskedLM

    if args.list_configs:
        for name, p in PRESETS.items():
            print(f"{name:<15} gpt2       emb {p['emb_dim']:>5}  layers {p['n_layers']:>3}  heads {p['n_heads']:>3}  "
                  f"context {p['context_length']:>6}")
        for name, p in DECODER_PRESETS.items():
            print(f"{name:<15} {p['arch']:<10} emb {p['emb_dim']:>5}  layers {p['n_layers']:>3}  heads {p['n_heads']:>3}  "
                  f"context {p['context_length']:>6}  kv heads {p['n_kv_heads']:>2}")
        for name, p in BERT_PRESETS.items():
            print(f"{name:<15} {'bert':<10} emb {p['emb_dim']:>5}  layers {p['n_layers']:>3}  heads {p['n_heads']:>3}  "
                  f"context {p.get('context_length', 512):>6}  (encoder, masked language model)")
        return 0
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))

    ck = None
    if args.resume:
        ck = open_checkpoint(load_checkpoint, args.resume)
        if ck.trainer_state is None or "settings" not in ck.info:
            raise CLIError(f"{ck.path}: holds no training state to resume from")
    settings = _settings(args, ck.info["settings"] if ck else None)
    arch = settings["arch"]
    bert = arch == "bert"
    if arch == "gpt2":
        presets = PRESETS
    elif bert:
        presets = BERT_PRESETS
    else:
        presets = {k: v for k, v in DECODER_PRESETS.items() if v["arch"] == arch}
    if args.config and args.config not in presets:
        raise CLIError(f"unknown config {args.config!r} for --arch {arch}; choose one of: {', '.join(presets)}")
    if arch != "gpt2" and settings.get("pos_emb") is not None:
        raise CLIError(f"--pos-emb is for --arch gpt2; {arch} always uses "
                       + ("learned absolute positions" if bert else "rotary position embeddings"))
    if bert and args.prompt is not None:
        raise CLIError("--prompt is for the decoders' samples; an encoder (--arch bert) does not generate text")
    if arch in ("gpt2", "bert") and settings.get("n_kv_heads") is not None:
        raise CLIError("--n-kv-heads is for grouped-query attention (--arch llama, qwen3, qwen3-moe or gemma3)")

    # --- text: a built-in corpus split by document, the user's files split by characters (the book),
    # or --data: token files made by 'prepare' (split when they were prepared)
    prepared = _open_prepared(args, settings, ck)
    if prepared is not None:
        text = prepared.sample_text()       # only to start the samples from
    else:
        if settings.get("text"):
            train_text, val_text = train_val_split(load_texts(settings["text"]), 0.9)
        else:
            if ck is not None and not settings.get("corpus"):
                raise CLIError(f"{ck.path}: this run trained on the embedded corpus of an earlier version (before it "
                               "was split by document), which no longer exists; start a new run")
            settings["corpus"] = settings.get("corpus") or "docs"
            train_text, val_text = split_documents(corpus_documents(settings["corpus"]))
        text = train_text + val_text        # what the tokenizer learns from and the run's fingerprint
        if ck is not None and ck.info.get("text_sha256") != _fingerprint(text):
            raise CLIError("the training text differs from the one this run started with; pass the same "
                           "--text files (or run under the Python version that started it)")
    # --- the model's shape first (a bad size fails now, not after training a tokenizer)
    if ck is not None:
        cfg = ck.config
    else:
        overrides = {k: settings[k] for k in ("context_length", "emb_dim", "n_layers", "n_heads", "n_kv_heads",
                                              "drop_rate", "pos_emb") if settings.get(k) is not None}
        try:
            if arch == "gpt2":
                cfg = GPTConfig.from_preset(settings["config"], **overrides)
            elif bert:     # one dropout rate for the hidden states and the attention weights
                if "drop_rate" in overrides:
                    overrides["attn_drop_rate"] = overrides["drop_rate"]
                if "emb_dim" in overrides:     # BERT's feed-forward is 4 x emb_dim wide at every size
                    overrides["hidden_dim"] = 4 * overrides["emb_dim"]
                cfg = BertConfig(**{**BERT_PRESETS[settings["config"]], **overrides}, add_pooler=False)
            else:
                preset = DECODER_PRESETS[settings["config"]]
                if "n_heads" in overrides and "n_kv_heads" not in overrides and overrides["n_heads"] % preset["n_kv_heads"]:
                    overrides["n_kv_heads"] = overrides["n_heads"]     # plain multi-head attention then
                if "n_layers" in overrides and preset.get("layer_types"):   # keep the local/global pattern's end
                    n = overrides["n_layers"]
                    overrides["layer_types"] = ["sliding_attention"] * (n - 1) + ["full_attention"]
                cfg = DecoderConfig.from_preset(settings["config"], **overrides)
        except (TypeError, ValueError) as e:
            raise CLIError(str(e)) from None

    out = run_folder(args)    # after the checks of the input: a bad --text is reported as such

    # --- tokenizer
    if ck is not None:
        tokenizer = ck.tokenizer
    elif prepared is not None:
        tokenizer = prepared.tokenizer
    elif settings.get("tokenizer"):
        tokenizer = BPETokenizer.load(settings["tokenizer"])
    else:
        started = time.perf_counter()
        # an encoder's vocabulary has BERT's [PAD] [CLS] [SEP] [MASK] [UNK]; a GPT's ends texts with <|endoftext|>
        specials = {"special_tokens": MLM_SPECIAL_TOKENS} if bert else {}
        with warnings.catch_warnings(record=True) as caught:   # e.g. "ran out of pairs": one line, below
            warnings.simplefilter("always")
            try:
                tokenizer = BPETokenizer.train(text, settings["vocab_size"], verbose=None if not args.quiet else False,
                                               **specials)
            except ValueError as e:
                raise CLIError(str(e)) from None
        for w in caught:
            say(f"note: {w.message}")
        say(f"trained a {tokenizer.n_vocab:,}-token BPE vocabulary on {len(text):,} characters "
            f"in {time.perf_counter() - started:.1f} s")

    if bert and any(t not in tokenizer.special_tokens for t in MLM_SPECIAL_TOKENS):
        raise CLIError(f"the tokenizer lacks BERT's special tokens {' '.join(MLM_SPECIAL_TOKENS)}; let --arch bert "
                       "train its own (leave out --tokenizer / --data)")

    # --- data: windows of the context length (an encoder's hold two tokens fewer: [CLS] ... [SEP] go around them)
    if prepared is not None:   # memory-mapped token files
        train_ids, val_ids = prepared.tokens("train"), prepared.tokens("val")
    else:
        # a "[MASK]" written in the text is text to an encoder (its special tokens are placed by the masking)
        special = dict(allowed_special=(), disallowed_special=()) if bert else dict(allowed_special="all")
        train_ids = tokenizer.encode(train_text, **special)
        val_ids = tokenizer.encode(val_text, **special)
    ctx = cfg.context_length
    window = ctx - 2 if bert else ctx
    if window < 1:
        raise CLIError(f"--context-length {ctx} leaves no room for text between [CLS] and [SEP]; use at least 3")
    for name, ids in (("training", train_ids), ("validation", val_ids)):
        if len(ids) <= window:
            raise CLIError(f"the {name} part of the text has {len(ids)} tokens but a window needs {window + 1}; "
                           f"use more text or a smaller --context-length")
    batch = settings["batch_size"]
    train_loader = DataLoader(GPTDataset(train_ids, window, window), batch_size=batch, shuffle=True, drop_last=True,
                              seed=settings["seed"])
    val_windows = GPTDataset(val_ids, window, window)
    if prepared is not None:   # a few batches for each evaluation, spread over the whole of val.bin
        val_windows = SpreadWindows(val_windows, settings["eval_batches"] * batch)
    val_loader = DataLoader(val_windows, batch_size=batch, shuffle=False, drop_last=False)
    if len(train_loader) == 0:
        raise CLIError(f"the training text makes {len(train_loader.dataset)} windows of {ctx} tokens, fewer than "
                       f"one batch of {batch}; use a smaller --batch-size")
    total = settings["epochs"] * len(train_loader) if settings.get("epochs") else settings["steps"]

    # --- model
    if ck is not None:
        model = ck.model
    else:
        cfg.vocab_size = tokenizer.n_vocab
        mg.manual_seed(settings["seed"])
        if bert:
            cfg.pad_token_id = tokenizer.special_tokens["[PAD]"]
            model = BertForMaskedLM(cfg)
        else:
            model = GPTModel(cfg) if arch == "gpt2" else build_model(cfg)

    # --- optimizer: AdamW, weight decay on matrices only (not on biases, norms)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = AdamW([{"params": decay, "weight_decay": settings["weight_decay"]},
                       {"params": no_decay, "weight_decay": 0.0}], lr=settings["lr"])
    schedule = dict(total_steps=total, peak_lr=settings["lr"], warmup_steps=min(settings["warmup"], total // 2),
                    initial_lr=settings["lr"] * 0.01, min_lr=settings["min_lr"], grad_clip=settings["grad_clip"] or None,
                    eval_freq=settings["eval_every"], eval_iter=settings["eval_batches"])
    if bert:   # masks drawn from a generator of the run's seed, saved with the run
        trainer = MLMTrainer(model, optimizer, train_loader, val_loader, **schedule, vocab_size=tokenizer.n_vocab,
                             specials=mlm_special_ids(tokenizer), mask_seed=settings["seed"])
    else:
        trainer = Trainer(model, optimizer, train_loader, val_loader, **schedule)
    if ck is not None:
        restore_training_state(ck, optimizer, trainer, total, out, "--steps")
        say(f"resuming {out} at step {trainer.state.step} of {total}")

    info = {"settings": {k: settings.get(k) for k in SETTING_NAMES}, "text_sha256": _fingerprint(text)}
    info["settings"]["steps"] = total
    info["settings"]["text"] = [str(Path(t).resolve()) for t in settings["text"]] if settings.get("text") else None
    if prepared is not None:
        info["settings"]["data"], info["data_fingerprint"] = str(prepared.directory.resolve()), prepared.fingerprint

    def checkpoint() -> Path:
        return save_checkpoint(out, model, tokenizer=tokenizer, optimizer=optimizer,
                               trainer_state=trainer.state_dict(), info=info)

    saver = RunSaver(out, checkpoint, resumed_from=ck)

    family = "" if arch == "gpt2" else f"{arch}, "
    kv = "" if arch in ("gpt2", "bert") else f" ({cfg.n_kv_heads} key/value)"
    say(f"model: {family}{cfg.n_layers} layers, {cfg.n_heads} heads{kv}, emb {cfg.emb_dim}, context {ctx}, "
        f"{count_parameters(model):,} parameters")
    say(f"data: {len(train_ids):,} training and {len(val_ids):,} validation tokens; "
        f"{len(train_loader)} batches of {batch} x {ctx} per epoch; {total} steps"
        + (f"; [CLS] + {window} tokens + [SEP], 15% of them masked" if bert else ""))

    progress = Progress(total, args.quiet)
    prompt = settings.get("prompt") or PROMPTS.get(settings.get("corpus")) or text[:40].split("\n")[0] or "The"

    def sample() -> str:
        """A continuation of the prompt by seeded top-k sampling (greedy decoding of a small model
        repeats itself); the same seed each time, so samples differ only as the model does."""
        ids = generate(model, text_to_token_ids(prompt, tokenizer), rng=settings["seed"], **SAMPLE)
        return token_ids_to_text(ids, tokenizer)[len(prompt):]

    def on_eval(t, train_loss: float, val_loss: float) -> None:
        progress.clear()
        if bert:
            acc = t.state.metrics
            say(f"step {t.state.step}: train loss {train_loss:.3f}, val loss {val_loss:.3f}; masked-token accuracy "
                f"train {acc['train_accuracy'][-1]:.3f}, val {acc['val_accuracy'][-1]:.3f}")
        else:
            say(f"step {t.state.step}: train loss {train_loss:.3f}, val loss {val_loss:.3f}")
        if not args.quiet and not bert:
            print(f"  {prompt}{sample()}".replace("\n", " "), flush=True)
        saver.save(t)

    train_until_done(trainer, progress, on_eval, saver)

    s = trainer.state
    final = saver.save(trainer)
    plot = _plot(out, s)
    if stopped_early(trainer, total, final, "pretrain", out):
        return 130
    say(f"trained {s.step} steps ({s.tokens_seen:,} tokens) in {duration(s.elapsed)}; checkpoint: {final}"
        + (f"; loss curve: {plot}" if plot else ""))
    if bert:
        val_loss, val_acc = trainer.measure(val_loader, settings["eval_batches"] if prepared else None)
        print(f"validation loss {val_loss:.2f}, masked-token accuracy {val_acc:.3f}")
        return 0
    if not args.quiet:
        print(f"prompt: {prompt}\nsample: {prompt}{sample()}", flush=True)
    model.eval()
    with mg.no_grad():
        val_loss = calc_loss_loader(val_loader, model, settings["eval_batches"] if prepared else None)
    print(f"validation loss {val_loss:.2f}")
    return 0
