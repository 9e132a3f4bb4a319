"""``python -m gpt finetune-dpo``: preference tuning with DPO (chapter 7's bonus) from the command line.

It starts from an instruction-tuned model (``--checkpoint`` from ``finetune-instruct``, or GPT-2's
weights with ``--gpt2``), keeps a frozen copy of it as the reference, and trains on a JSON list of
``{instruction, input, chosen, rejected}`` entries (the book's
``instruction-data-with-preference.json``: ``python -m gpt download preference-data``), split in file
order 85/10/5 into training, held-out and validation pairs. Each evaluation prints the DPO loss, the
reward margin, the reward accuracy (the share of pairs whose margin is positive: a training figure,
0 at the start by definition) and the chosen and rejected rewards. Before and after, it measures the
*preference accuracy* on the held-out pairs: how often the model finds the chosen answer more likely
than the rejected one.

``--demo`` works offline: it makes pairs from chapter 7's demo questions and starts from the
instruction demo's model, training that first (``finetune-instruct --demo --demo-flaws 0.7``, into
OUT/sft) unless ``--checkpoint`` names one. That model learns from noisy labels: 70 % of its
upper-casing and letter-counting training answers carry a systematic flaw (the word left in lower
case; one letter too many), so it makes those mistakes. The pairs' chosen answer is the exact one;
the rejected one is that flaw for those two tasks and another plausible wrong answer for the others
(an off-by-one sum or count, another task's answer, a misspelling). It reports, on held-out questions
that neither training saw, the preference accuracy and the exact-match accuracy (by task), before
and after: DPO corrects the learnt flaws; it does not teach what the model never could (adding).

Checkpoints are atomic; Ctrl-C saves one; ``--resume DIR`` continues exactly (the reference model is
saved once, in OUT/reference). ``chat`` and ``generate`` load the result (LoRA merged on load).
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from gpt.cli import CLIError
from gpt.cli.common import (
    Progress, RunSaver, add_model_source, duration, load_model_and_tokenizer, non_negative_float,
    non_negative_int, open_checkpoint, overlay_options, positive_int, probability, restore_training_state, run_folder,
    stopped_early, train_until_done,
)

# The book's settings (its DPO notebook): AdamW, lr 5e-6, weight decay 0.01, beta 0.1, batch 8, 1 epoch.
DEFAULTS = dict(epochs=1, batch_size=8, lr=5e-6, min_lr=None, warmup=0, weight_decay=0.01, beta=0.1,
                nll_weight=0.0, eval_every=None, eval_batches=5, seed=123, max_length=None, boundary="answer",
                average_logprobs=False, lora_rank=None, lora_alpha=None, max_new_tokens=256, data=None,
                demo=False, demo_size=1000, grad_clip=None, demo_flaws=None)
# --demo: the instruction demo's small model (4 layers, width 128) moves little at the book's lr 5e-6;
# at lr 1e-4 beta 0.5 keeps it nearer the reference than 0.1, which halved its exact-match accuracy
# --demo: the share of the upper-casing and letter-counting answers that the instruction demo learns
# with a systematic flaw (gpt.finetune.instruct.add_demo_flaws); above 0.5 its greedy answers carry it
DEMO_FLAW_SHARE = 0.7
DEMO = dict(epochs=1, lr=1e-4, beta=0.5, warmup=None, max_new_tokens=16, grad_clip=1.0, demo_flaws=DEMO_FLAW_SHARE)
# what --resume may change; everything else shapes the data, the model or the optimizer
RESUME_OVERRIDES = ("epochs", "eval_every", "eval_batches", "max_new_tokens")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "finetune-dpo", help="preference tuning with DPO (chapter 7's bonus)",
        description="Preference tuning with DPO: teach an instruction-tuned model to prefer the chosen answer of "
                    "each pair over the rejected one, measured against a frozen copy of itself. --data takes a "
                    "JSON list of {instruction, input, chosen, rejected} entries, split in file order into 85%% "
                    "training, 10%% held-out and 5%% validation pairs. --demo trains the instruction demo on "
                    "noisy labels (systematic flaws), makes pairs that reject those flaws, and reports the "
                    "preference accuracy (log p(chosen) > log p(rejected)) and exact-match accuracy on held-out "
                    "questions before and after. Ctrl-C "
                    "saves a checkpoint; --resume continues it exactly.")
    data = p.add_mutually_exclusive_group()
    data.add_argument("--data", metavar="FILE.json",
                      help="preference data (the book's: 'python -m gpt download preference-data')")
    data.add_argument("--demo", action="store_true", default=None,
                      help="pairs made from chapter 7's demo questions (offline, checkable answers), tuning a model "
                           "that learnt systematic flaws from noisy labels")
    p.add_argument("--demo-size", type=positive_int, metavar="N",
                   help="demo questions to make pairs of (default: what the --checkpoint was trained on, else 1000)")
    p.add_argument("--demo-flaws", type=probability, metavar="P",
                   help="with --demo and no --checkpoint: the share of the upper-casing and letter-counting "
                        "answers the instruction demo learns with a systematic flaw (lower case; one letter too "
                        f"many), the noisy labels DPO then corrects (default: {DEMO_FLAW_SHARE})")
    add_model_source(p, required=False,
                     checkpoint_help="the instruction-tuned model to start from (from 'finetune-instruct'); "
                                     "with --demo, default: train the instruction demo's model into OUT/sft")
    p.add_argument("--config", metavar="NAME",
                   help="with --demo and no --checkpoint: the instruction demo's model config ('demo' or a preset)")
    p.add_argument("--beta", type=non_negative_float, metavar="B",
                   help="DPO's beta: how far the policy may move from the reference (default: 0.1)")
    p.add_argument("--nll-weight", type=non_negative_float, metavar="W",
                   help="beyond the book: add W times the chosen answers' per-token negative log-likelihood "
                        "to the loss (default: 0, plain DPO)")
    p.add_argument("--boundary", choices=("answer", "book"),
                   help="which tokens count: 'answer' (the answer and its end-of-text; the default) or 'book' "
                        "(everything after the prompt's two newlines, as the book's notebook)")
    p.add_argument("--average-logprobs", action=argparse.BooleanOptionalAction, default=None,
                   help="average the log-probabilities over the answer's tokens (the book's notebook) instead "
                        "of summing them (the paper's; the default)")
    p.add_argument("--lora-rank", type=positive_int, metavar="R",
                   help="freeze the model and train LoRA matrices of rank R on every Linear (appendix E)")
    p.add_argument("--lora-alpha", type=non_negative_float, metavar="A", help="LoRA scaling alpha (default: the rank)")
    p.add_argument("--epochs", type=positive_int, metavar="N", help="passes over the training pairs (default: 1)")
    p.add_argument("--batch-size", type=positive_int, metavar="N", help="pairs per batch (default: 8)")
    p.add_argument("--lr", type=non_negative_float, metavar="LR", help="peak learning rate (default: 5e-6, the book's)")
    p.add_argument("--min-lr", type=non_negative_float, metavar="LR",
                   help="learning rate at the end of a cosine decay (default: --lr, constant, as the book; "
                        "--lr / 10 for the demo)")
    p.add_argument("--warmup", type=non_negative_int, metavar="N",
                   help="steps of linear warmup (default: 0; a tenth of the steps for the demo)")
    p.add_argument("--weight-decay", type=non_negative_float, metavar="W", help="AdamW weight decay (default: 0.01)")
    p.add_argument("--max-length", type=positive_int, metavar="N",
                   help="cut sequences to N tokens (default: the model's context length)")
    p.add_argument("--eval-every", type=positive_int, metavar="N",
                   help="evaluate and save a checkpoint every N steps (default: a tenth of the run)")
    p.add_argument("--eval-batches", type=positive_int, metavar="N", help="batches per evaluation (default: 5)")
    p.add_argument("--max-new-tokens", type=positive_int, metavar="N",
                   help="longest answer to generate (default: 256; 16 for --demo)")
    p.add_argument("--seed", type=int, metavar="N", help="seeds LoRA, the demo's pairs and shuffling (default: 123)")
    p.add_argument("--out", metavar="DIR", default="runs/dpo", help="checkpoint folder (default: runs/dpo)")
    p.add_argument("--resume", metavar="DIR", help="continue the run saved in DIR (up to --epochs in total)")
    p.add_argument("--quiet", action="store_true", help="print only the result")
    p.set_defaults(func=run_dpo)


# ---------------------------------------------------------------------- pieces
def _settings(args: argparse.Namespace, saved: dict | None) -> dict:
    """Command-line values over the saved run's (when resuming) over the defaults (and the demo's)."""
    settings = dict(DEFAULTS, **saved) if saved is not None else dict(DEFAULTS, **(DEMO if args.demo else {}))
    options = [name for name in DEFAULTS if name not in ("data", "demo")]
    overlay_options(settings, args, options, saved, RESUME_OVERRIDES)
    if saved is None:
        settings["demo"] = bool(args.demo)
        settings["data"] = str(Path(args.data).resolve()) if args.data else None
    elif args.data is not None or args.demo:
        raise CLIError("--resume continues with the run's own data; leave out --data/--demo")
    if not settings["beta"] > 0:
        raise CLIError("--beta must be greater than 0")
    return settings


def _pairs(settings: dict):
    """(train, held-out, validation) pairs and a fingerprint of the data; one-line errors."""
    from gpt.finetune.dpo import demo_preference_data, load_preference_data
    from gpt.finetune.instruct import demo_instruction_data, split_instruction_data

    if settings["demo"]:
        try:
            entries = demo_instruction_data(settings["demo_size"])
        except ValueError as e:
            raise CLIError(str(e).replace("ask for fewer", "pass a smaller --demo-size")) from None
        train, test, val = split_instruction_data(entries)       # the instruction demo's split: test is unseen
        seed = settings["seed"]
        parts = (demo_preference_data(train, seed, flaws=True), demo_preference_data(test, seed + 1, flaws=True),
                 demo_preference_data(val, seed + 2, flaws=True))
        text = json.dumps(parts, sort_keys=True)
    else:
        path = Path(settings["data"])
        try:
            entries = load_preference_data(path)
        except FileNotFoundError:
            raise CLIError(f"{path}: no such file (the book's data: 'python -m gpt download preference-data')") from None
        parts = split_instruction_data(entries)
        text = path.read_text(encoding="utf-8-sig")
    return parts, hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _train_instruction_demo(args, settings: dict, sft: Path, say) -> None:
    """The instruction demo's model, trained by ``finetune-instruct --demo`` into ``sft`` (kept for
    the next run: a finished one there is used as it is)."""
    from gpt.cli.finetune_instruct import run_finetune

    if (sft / "latest").exists():
        from gpt.checkpoint import CheckpointError, load_checkpoint
        try:
            ck = load_checkpoint(sft, load_training_state=True)
        except CheckpointError as e:
            raise CLIError(str(e)) from None
        state = (ck.trainer_state or {}).get("train_state", {})
        total = (ck.trainer_state or {}).get("schedule", {}).get("total_steps")
        if state.get("step") != total:
            raise CLIError(f"{sft} holds an unfinished instruction fine-tune; finish it with "
                           f"'python -m gpt finetune-instruct --resume {sft}' or delete it")
        say(f"starting from the instruction demo's model in {sft}")
        return
    flaws = f" --demo-flaws {settings['demo_flaws']:g}" if settings["demo_flaws"] else ""
    say(f"training the instruction demo's model first (finetune-instruct --demo{flaws} --out {sft}); its noisy "
        "labels teach it systematic mistakes for DPO to correct" if flaws else
        f"training the instruction demo's model first (finetune-instruct --demo --out {sft})")
    ns = argparse.Namespace(**{a: None for a in (
        "data", "checkpoint", "gpt2", "vocab", "lora_rank", "lora_alpha", "epochs", "batch_size", "lr", "min_lr",
        "warmup", "weight_decay", "max_length", "mask_prompt", "eval_every", "eval_batches", "max_new_tokens",
        "seed", "responses", "resume", "grad_clip")})
    ns.demo, ns.demo_size, ns.config, ns.out, ns.quiet = True, settings["demo_size"], args.config, str(sft), True
    ns.demo_flaws = settings["demo_flaws"]
    code = run_finetune(ns)
    if code:
        raise CLIError(f"the instruction demo's training stopped (exit code {code}); continue it with "
                       f"'python -m gpt finetune-instruct --resume {sft}'")


def _load_source(args, source: dict):
    """(model, tokenizer) from a recorded source: {"checkpoint": DIR} or {"gpt2": PATH, "vocab": DIR}."""
    ns = argparse.Namespace(checkpoint=source.get("checkpoint"), gpt2=source.get("gpt2"), vocab=source.get("vocab"))
    model, tokenizer = load_model_and_tokenizer(ns)
    return model, tokenizer


def _percent(x: float) -> str:
    return f"{x:.1%}"


def _held_out(model, tokenizer, loader, pairs, settings, exact: bool) -> dict:
    """The held-out figures: the preference accuracy (how often log p(chosen) > log p(rejected)) and,
    for the demo, the exact-match accuracy (by task as well)."""
    from gpt.finetune.dpo import preference_accuracy
    from gpt.finetune.instruct import exact_match_accuracy, generate_responses

    result = {"ranked": preference_accuracy(model, loader, settings["average_logprobs"])}
    if exact:
        entries = [dict(p, output=p["chosen"]) for p in pairs]
        result["exact_match"], result["by_task"] = exact_match_accuracy(
            entries, generate_responses(model, tokenizer, entries, settings["max_new_tokens"]), by_task=True)
    return result


def write_dpo_logs(out: Path, trainer) -> None:
    """log.json (the trainer's history with every evaluation's DPO figures) and log.csv (one row per
    evaluation), atomically; loss.png with the plot extra installed."""
    from gpt.atomic import write_text_atomic

    s = trainer.state
    write_text_atomic(out / "log.json", json.dumps(dict(s.to_dict(), dpo=trainer.history)) + "\n")
    columns = ["loss", "margin", "accuracy", "chosen_reward", "rejected_reward"]
    rows = ["step,tokens_seen,lr," + ",".join(f"{part}_{c}" for part in ("train", "val") for c in columns)]
    for tokens, record in zip(s.track_tokens_seen, trainer.history):
        step = record["step"]
        lr = s.track_lrs[step - 1] if 0 < step <= len(s.track_lrs) else float("nan")
        values = [f"{record[part][c]:.6f}" for part in ("train", "val") for c in columns]
        rows.append(f"{step},{tokens},{lr:.6g}," + ",".join(values))
    write_text_atomic(out / "log.csv", "\n".join(rows) + "\n")
    _plot(out, trainer.history)


def _plot(out: Path, history: list) -> Path | None:
    """loss.png: the DPO loss and the reward margin on training and validation pairs (like the book's
    figures), if matplotlib is installed (pip install -e '.[plot]')."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    from gpt.atomic import atomic_write

    steps = [r["step"] for r in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, key, title in ((axes[0], "loss", "DPO loss"), (axes[1], "margin", "Reward margin")):
        ax.plot(steps, [r["train"][key] for r in history], label="Training")
        ax.plot(steps, [r["val"][key] for r in history], linestyle="-.", label="Validation")
        ax.set_xlabel("Steps")
        ax.set_ylabel(title)
        ax.legend()
    fig.tight_layout()
    with atomic_write(out / "loss.png") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
    return out / "loss.png"


class _DPOSaver(RunSaver):
    def save(self, trainer) -> Path:
        self.last = self.save_checkpoint()
        write_dpo_logs(self.out, trainer)
        return self.last


# ---------------------------------------------------------------------- finetune-dpo
def run_dpo(args: argparse.Namespace) -> int:
    import functools

    import minigrad as mg
    from minigrad.optim import AdamW

    from gpt.checkpoint import save_checkpoint
    from gpt.data import DataLoader
    from gpt.finetune.dpo import DPOTrainer, PreferenceDataset, dpo_collate_fn, save_dpo_checkpoint, stack_pairs
    from gpt.finetune.instruct import add_lora, generate_responses, load_instruct_checkpoint
    from gpt.model import count_parameters

    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))

    # --- a run to resume, or a new one
    ck = None
    if args.resume:
        if args.checkpoint or args.gpt2:
            raise CLIError("--resume continues a saved run; leave out --checkpoint/--gpt2")
        ck = open_checkpoint(load_instruct_checkpoint, args.resume, load_training_state=True)
        if ck.trainer_state is None or ck.info.get("task") != "preference" or "settings" not in ck.info:
            raise CLIError(f"{ck.path}: holds no DPO run to resume")
    elif not (args.data or args.demo):
        raise CLIError("say what to train on: --data FILE.json (a list of {instruction, input, chosen, rejected}) "
                       "or --demo")
    elif args.data and not (args.checkpoint or args.gpt2):
        raise CLIError("say which model to tune: --checkpoint DIR (from 'finetune-instruct') or --gpt2 "
                       "model.safetensors (only --demo trains its own)")
    if args.config is not None and (ck is not None or not args.demo or args.checkpoint or args.gpt2):
        raise CLIError("--config chooses the instruction demo's model when --demo trains it; leave it out here")
    if args.demo_flaws is not None and (ck is not None or not args.demo or args.checkpoint or args.gpt2):
        raise CLIError("--demo-flaws shapes the instruction demo's data when --demo trains its model; "
                       "leave it out here")
    saved = ck.info["settings"] if ck is not None else None
    settings = _settings(args, saved)
    if settings["lora_rank"] is None and settings["lora_alpha"] is not None:
        raise CLIError("--lora-alpha needs --lora-rank")
    out = run_folder(args)

    # --- the model to tune and the reference: the same weights, one frozen
    if ck is not None:
        model, tokenizer = ck.model, ck.tokenizer
        reference = open_checkpoint(load_instruct_checkpoint, out / "reference", merge=True).model
        source = ck.info.get("source", {})
    else:
        if args.demo and not (args.checkpoint or args.gpt2):
            sft = out / "sft"
            _train_instruction_demo(args, settings, sft, say)
            source = {"checkpoint": str(sft.resolve())}
        elif args.checkpoint:
            source = {"checkpoint": str(Path(args.checkpoint).resolve())}
        else:
            source = {"gpt2": str(Path(args.gpt2).resolve()), "vocab": str(Path(args.vocab).resolve()) if args.vocab
                      else None}
        model, tokenizer = _load_source(args, source)
        model.requires_grad_(True)       # an earlier LoRA fine-tune, merged, left its weights frozen
        reference, _ = _load_source(args, source)
        if args.demo and args.demo_size is None and source.get("checkpoint"):
            start = open_checkpoint(load_instruct_checkpoint, source["checkpoint"]).info.get("settings", {})
            if start.get("demo") and isinstance(start.get("demo_size"), int):
                settings["demo_size"] = start["demo_size"]     # the questions it was trained on: same split
            settings["demo_flaws"] = start.get("demo_flaws", 0.0) if start.get("demo") else None
    try:
        pad_token_id = tokenizer.eot_token
    except ValueError:
        raise CLIError("the tokenizer has no <|endoftext|> token to pad with") from None
    context = model.cfg.context_length
    if settings["max_length"] is not None and settings["max_length"] > context:
        raise CLIError(f"--max-length {settings['max_length']} exceeds the model's context length {context}")
    max_length = settings["max_length"] or context

    # --- data: pairs, split in file order; pairs whose answers do not fit are left out
    (train, test, val), fingerprint = _pairs(settings)
    if ck is not None and ck.info.get("data_sha256") != fingerprint:
        raise CLIError("the data differs from the data this run started with; restore the original file")
    source_name = "the demo pairs" if settings["demo"] else settings["data"]
    if not train:
        raise CLIError(f"{source_name}: too few entries to split into training, held-out and validation pairs")

    def fitting(pairs):
        data = PreferenceDataset(pairs, tokenizer)
        keep = [i for i, item in enumerate(data.encoded_texts)
                if item["chosen_start"] < max_length and item["rejected_start"] < max_length]
        if len(keep) < len(pairs):
            say(f"note: {len(pairs) - len(keep)} of {len(pairs)} pairs have prompts of {max_length}+ tokens and are left out")
            pairs = [pairs[i] for i in keep]
            data = PreferenceDataset(pairs, tokenizer)
        return pairs, data

    train, train_set = fitting(train)
    test, test_set = fitting(test)
    val, val_set = fitting(val)
    collate = functools.partial(dpo_collate_fn, pad_token_id=pad_token_id, allowed_max_length=max_length,
                                boundary=settings["boundary"])

    def stacked(batch):
        return stack_pairs(collate(batch))

    batch = settings["batch_size"]
    train_loader = DataLoader(train_set, batch_size=batch, shuffle=True, drop_last=True, seed=settings["seed"],
                              collate_fn=stacked)
    val_loader = DataLoader(val_set, batch_size=batch, drop_last=False, collate_fn=stacked) if val else None
    test_loader = DataLoader(test_set, batch_size=max(batch, 16), drop_last=False, collate_fn=stacked)
    if len(train_loader) == 0:
        raise CLIError(f"{len(train)} training pairs make no batch of {batch}; use a smaller --batch-size")
    total = settings["epochs"] * len(train_loader)
    warmup = settings["warmup"] if settings["warmup"] is not None else total // 10
    min_lr = settings["min_lr"]
    if min_lr is None:
        min_lr = settings["lr"] / 10 if settings["demo"] else settings["lr"]
    eval_every = settings["eval_every"] or max(1, total // 10)

    # --- what trains: everything, or LoRA matrices only (rebuilt by load_instruct_checkpoint on resume)
    if ck is None and settings["lora_rank"] is not None:
        mg.manual_seed(settings["seed"])
        add_lora(model, settings["lora_rank"], settings["lora_alpha"])
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = AdamW(params, lr=settings["lr"], weight_decay=settings["weight_decay"])
    trainer = DPOTrainer(model, reference, optimizer, train_loader, val_loader, beta=settings["beta"],
                         average_logprobs=settings["average_logprobs"], nll_weight=settings["nll_weight"],
                         total_steps=total, peak_lr=settings["lr"], warmup_steps=warmup,
                         initial_lr=settings["lr"] * 0.01 if warmup else None, min_lr=min_lr,
                         grad_clip=settings["grad_clip"], eval_freq=eval_every, eval_iter=settings["eval_batches"])
    if ck is not None:
        restore_training_state(ck, optimizer, trainer, total, out, "--epochs")
        say(f"resuming {out} at step {trainer.state.step} of {total}")

    info = {"settings": settings, "data_sha256": fingerprint, "source": source,
            "instruct": {"pad_token_id": pad_token_id, "max_length": max_length}}
    if ck is not None and "before" in ck.info:
        info["before"] = ck.info["before"]

    def checkpoint() -> Path:
        return save_dpo_checkpoint(out, model, tokenizer=tokenizer, optimizer=optimizer,
                                   trainer_state=trainer.state_dict(), info=info)

    saver = _DPOSaver(out, checkpoint, resumed_from=ck)
    cfg = model.cfg
    say(f"model: {cfg.n_layers} layers, {cfg.n_heads} heads, width {cfg.emb_dim}, context {context}; "
        f"trainable parameters {count_parameters(model, trainable_only=True):,} of {count_parameters(model):,}; "
        f"beta {settings['beta']}")
    say(f"data: {source_name}: {len(train)} training, {len(test)} held-out, {len(val)} validation pairs; "
        f"{len(train_loader)} batches of {batch} per epoch; {total} steps")
    if ck is None:
        save_checkpoint(out / "reference", reference, tokenizer=tokenizer, info={"task": "reference"}, keep=1)
        if test:
            info["before"] = _held_out(model, tokenizer, test_loader, test, settings, settings["demo"])
            say(_before_after_lines(info["before"], None, settings["demo"]))

    progress = Progress(total, args.quiet)
    sample = (val or test or train)[0]

    def on_eval(t, train_loss: float, val_loss: float) -> None:
        progress.clear()
        m = t.history[-1]["val" if val_loader is not None else "train"]
        say(f"step {t.state.step} (epoch {(t.state.step - 1) // len(train_loader) + 1}): "
            f"train loss {train_loss:.3f}, val loss {val_loss:.3f}, val margin {m['margin']:.3f}, "
            f"reward accuracy {m['accuracy']:.0%}, rewards {m['chosen_reward']:.3f} chosen / "
            f"{m['rejected_reward']:.3f} rejected")
        if not args.quiet:
            answer = generate_responses(model, tokenizer, [sample], settings["max_new_tokens"])[0]
            question = sample["instruction"] + (f" | {sample['input']}" if sample.get("input") else "")
            say(f"  {question[:60]!r} -> {answer[:60]!r} (chosen {sample['chosen'][:40]!r})")
        saver.save(t)

    train_until_done(trainer, progress, on_eval, saver)
    s = trainer.state
    final = saver.save(trainer)
    if stopped_early(trainer, total, final, "finetune-dpo", out):
        return 130
    say(f"trained {s.step} steps ({s.tokens_seen:,} tokens) in {duration(s.elapsed)}; checkpoint: {final}")
    if not test:
        print("no held-out pairs to measure (the data is too small for a test part)")
        return 0
    from gpt.finetune.dpo import compute_dpo_loss_loader
    held = compute_dpo_loss_loader(test_loader, model, reference, settings["beta"],
                                   average=settings["average_logprobs"])
    after = _held_out(model, tokenizer, test_loader, test, settings, settings["demo"])
    print(f"held-out pairs: DPO loss {held['loss']:.3f}, reward margin {held['margin']:.3f}, reward accuracy "
          f"(margin > 0) {_percent(held['accuracy'])}, rewards {held['chosen_reward']:.3f} chosen / "
          f"{held['rejected_reward']:.3f} rejected")
    say(f"ask it yourself: python -m gpt chat --checkpoint {out}")
    print(_before_after_lines(info.get("before"), after, settings["demo"]))
    return 0


def _before_after_lines(before: dict | None, after: dict | None, demo: bool) -> str:
    """'preference accuracy ...' and, for the demo, 'exact-match accuracy ...' (and by task), before -> after."""
    def figure(key):
        b = _percent(before[key]) if before and key in before else "?"
        return b if after is None else f"{b} -> {_percent(after[key])}"

    when = "before" if after is None else "before -> after"
    lines = [f"preference accuracy on the held-out pairs, log p(chosen) > log p(rejected), {when}: "
             f"{figure('ranked')}"]
    if demo:
        lines.append(f"exact-match accuracy on the held-out questions, {when}: {figure('exact_match')}")
        tasks = sorted(set((before or {}).get("by_task", {})) | set((after or {}).get("by_task", {})))
        if tasks:
            by_task = [(t, (before or {}).get("by_task", {}), (after or {}).get("by_task", {})) for t in tasks]
            lines.append("  by task: " + ", ".join(
                f"{t} " + (f"{b[t]:.0%}" if t in b else "?") + (f" -> {a[t]:.0%}" if after is not None else "")
                for t, b, a in by_task))
    return "\n".join(lines)
