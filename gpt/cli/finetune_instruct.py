"""``python -m gpt finetune-instruct``: chapter 7 from the command line.

``finetune-instruct`` teaches a model to follow instructions given as a JSON list of
``{instruction, input, output}`` entries (the book's ``instruction-data.json``), split in file order
85/10/5 into training, test and validation entries, and ends by writing the model's answers to the
test entries next to the data (``*-with-response.json``). It starts from a checkpoint of
``pretrain`` or from GPT-2's weights, fully or with LoRA (``--lora-rank``); Ctrl-C saves a
checkpoint and ``--resume DIR`` continues it exactly.

``--demo`` trains on questions the project makes up and can grade itself (upper-casing, reversing,
counting, adding) and reports the exact-match accuracy on the test questions before and after.
Without --checkpoint/--gpt2 it starts from a small randomly initialised GPT (4 layers, width 128)
with its own tiny vocabulary and learns only the answers (--mask-prompt): in about 70 s on a
2-core CPU it goes from 0 % to about 65 % exact match, so the demo needs no pretraining; pass
--checkpoint or --gpt2 to start from a pretrained model instead.

``python -m gpt chat --checkpoint DIR`` (:mod:`gpt.cli.chat`) then talks to the result.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

from gpt.cli import CLIError
from gpt.cli.common import (
    Progress, RunSaver, add_model_source, duration, load_model_and_tokenizer, non_negative_float,
    non_negative_int, open_checkpoint, overlay_options, positive_int, probability, restore_training_state, run_folder,
    stopped_early, train_until_done,
)

# The book's settings for fine-tuning a pretrained model (section 7.6): AdamW, lr 5e-5 held
# constant, weight decay 0.1, batch size 8, 2 epochs.
DEFAULTS = dict(epochs=2, batch_size=8, lr=5e-5, min_lr=None, warmup=0, weight_decay=0.1, eval_every=None,
                eval_batches=5, seed=123, max_length=None, mask_prompt=False, lora_rank=None, lora_alpha=None,
                max_new_tokens=256, data=None, demo=False, demo_size=1000, config=None, grad_clip=None,
                demo_flaws=0.0)
# --demo without a model: a small GPT from random initialisation, trained harder (warmup, cosine decay)
SCRATCH = dict(epochs=10, batch_size=8, lr=1e-3, warmup=None, config="demo", max_new_tokens=16, grad_clip=1.0,
               mask_prompt=True)
DEMO_MODEL = dict(context_length=128, emb_dim=128, n_heads=4, n_layers=4, drop_rate=0.0)
# what --resume may change; everything else shapes the data, the model or the optimizer
RESUME_OVERRIDES = ("epochs", "eval_every", "eval_batches", "max_new_tokens")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "finetune-instruct", help="fine-tune a GPT to follow instructions (chapter 7)",
        description="Fine-tune a GPT on instruction/response pairs (chapter 7): a JSON list of {instruction, "
                    "input, output} entries, split in file order into 85% training, 10% test and 5% validation. "
                    "At the end the model answers the test entries; the answers are written next to the data. "
                    "--demo uses generated questions with checkable answers and reports the exact-match accuracy "
                    "before and after. Ctrl-C saves a checkpoint; --resume continues it exactly.")
    data = p.add_mutually_exclusive_group()
    data.add_argument("--data", metavar="FILE.json",
                      help="instruction data (the book's: 'python -m gpt download instruction-data')")
    data.add_argument("--demo", action="store_true", default=None,
                      help="train on generated questions (upper-case, reverse, count, add) and report "
                           "the exact-match accuracy")
    p.add_argument("--demo-size", type=positive_int, metavar="N", help="number of generated entries (default: 1000)")
    p.add_argument("--demo-flaws", type=probability, metavar="P",
                   help="noisy labels: answer each upper-casing and letter-counting training (and validation) "
                        "question with a systematic flaw (the word in lower case; one letter too many) with "
                        "probability P; the test questions keep their exact answers (default: 0; finetune-dpo "
                        "--demo uses 0.7 to give DPO something to fix)")
    add_model_source(p, required=False,     # (--resume takes the model from the run instead)
                     checkpoint_help="start from a checkpoint written by 'python -m gpt pretrain'")
    p.add_argument("--config", metavar="NAME",
                   help="with --demo and no model: 'demo' (4 layers, width 128; the default) or a preset of "
                        "'python -m gpt pretrain --list-configs'")
    p.add_argument("--lora-rank", type=positive_int, metavar="R",
                   help="freeze the model and train LoRA matrices of rank R on every Linear (appendix E)")
    p.add_argument("--lora-alpha", type=non_negative_float, metavar="A", help="LoRA scaling alpha (default: the rank)")
    p.add_argument("--epochs", type=positive_int, metavar="N",
                   help="passes over the training data (default: 2, the book's; 10 for the demo from scratch)")
    p.add_argument("--batch-size", type=positive_int, metavar="N", help="default: 8")
    p.add_argument("--lr", type=non_negative_float, metavar="LR",
                   help="peak learning rate (default: 5e-5, the book's; 1e-3 for the demo from scratch)")
    p.add_argument("--min-lr", type=non_negative_float, metavar="LR",
                   help="learning rate at the end of a cosine decay (default: --lr, i.e. constant, as the book; "
                        "--lr / 10 for the demo from scratch)")
    p.add_argument("--warmup", type=non_negative_int, metavar="N",
                   help="steps of linear warmup (default: 0; a tenth of the steps for the demo from scratch)")
    p.add_argument("--weight-decay", type=non_negative_float, metavar="W", help="AdamW weight decay (default: 0.1)")
    p.add_argument("--max-length", type=positive_int, metavar="N",
                   help="cut training sequences to N tokens (default: the model's context length)")
    p.add_argument("--mask-prompt", action=argparse.BooleanOptionalAction, default=None,
                   help="learn only the responses: leave the prompt tokens out of the loss (exercise 7.2; "
                        "default: off, as in the book, but on for the demo from scratch)")
    p.add_argument("--eval-every", type=positive_int, metavar="N",
                   help="evaluate, show a sample answer and save a checkpoint every N steps "
                        "(default: a tenth of the run)")
    p.add_argument("--eval-batches", type=positive_int, metavar="N", help="batches per evaluation (default: 5)")
    p.add_argument("--max-new-tokens", type=positive_int, metavar="N",
                   help="longest answer to generate (default: 256; 16 for --demo)")
    p.add_argument("--seed", type=int, metavar="N", help="seeds initialisation, LoRA and shuffling (default: 123)")
    p.add_argument("--out", metavar="DIR", default="runs/instruct", help="checkpoint folder (default: runs/instruct)")
    p.add_argument("--responses", metavar="FILE.json",
                   help="where to write the test answers (default: next to --data as NAME-with-response.json; "
                        "in the checkpoint folder for --demo)")
    p.add_argument("--resume", metavar="DIR", help="continue the run saved in DIR (up to --epochs in total)")
    p.add_argument("--quiet", action="store_true", help="print only the result")
    p.set_defaults(func=run_finetune)


# ---------------------------------------------------------------------- pieces
def _settings(args: argparse.Namespace, saved: dict | None) -> dict:
    """Command-line values over the saved run's (when resuming) over the defaults."""
    if saved is not None:
        settings = dict(DEFAULTS, **saved)
    else:
        settings = dict(DEFAULTS)
        if args.demo and not (args.checkpoint or args.gpt2):
            settings.update(SCRATCH)
        elif args.demo:
            settings["max_new_tokens"] = SCRATCH["max_new_tokens"]
    options = [name for name in DEFAULTS if name not in ("data", "demo")]   # (these two: below)
    overlay_options(settings, args, options, saved, RESUME_OVERRIDES)
    if saved is None:
        settings["demo"] = bool(args.demo)
        settings["data"] = str(Path(args.data).resolve()) if args.data else None
    elif args.data is not None or args.demo:
        raise CLIError("--resume continues with the run's own data; leave out --data/--demo")
    return settings


def _load_entries(settings: dict) -> tuple[list[dict], str]:
    """(entries, fingerprint of the data) from --data or --demo; one-line errors."""
    from gpt.finetune.instruct import demo_instruction_data, load_instruction_data

    if settings["demo"]:
        try:
            entries = demo_instruction_data(settings["demo_size"])
        except ValueError as e:
            raise CLIError(str(e).replace("ask for fewer", "pass a smaller --demo-size")) from None
        text = json.dumps(entries, sort_keys=True)
    else:
        path = Path(settings["data"])
        try:
            entries = load_instruction_data(path)   # empty, a folder, not JSON: a one-line ValueError
        except FileNotFoundError:
            raise CLIError(f"{path}: no such file (the book's data: 'python -m gpt download instruction-data')") from None
        text = path.read_text(encoding="utf-8-sig")
    return entries, hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _scratch_model(settings: dict, tokenizer):
    """The demo's model from random initialisation (``--config demo`` or a preset)."""
    import minigrad as mg
    from gpt.model import PRESETS, GPTConfig, GPTModel

    name = settings["config"]
    if name == "demo":
        cfg = GPTConfig(vocab_size=tokenizer.n_vocab, **DEMO_MODEL)
    elif name in PRESETS:
        cfg = GPTConfig.from_preset(name, vocab_size=tokenizer.n_vocab)
    else:
        raise CLIError(f"unknown config {name!r}; choose 'demo' or one of: {', '.join(PRESETS)}")
    mg.manual_seed(settings["seed"])
    return GPTModel(cfg)


def _load_start_model(args):
    """(model, tokenizer) to fine-tune, from --checkpoint (LoRA layers of an earlier fine-tune merged)
    or --gpt2."""
    model, tokenizer = load_model_and_tokenizer(args)
    model.requires_grad_(True)      # an earlier LoRA fine-tune, merged, left its weights frozen
    return model, tokenizer


def _percent_by_task(accuracy: float, per_task: dict) -> str:
    return f"{accuracy:.1%} (" + ", ".join(f"{t} {a:.0%}" for t, a in sorted(per_task.items())) + ")"


def _one_line(text: str, limit: int = 70) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[:limit - 3] + "..."


# ---------------------------------------------------------------------- finetune-instruct
def run_finetune(args: argparse.Namespace) -> int:
    import functools

    import minigrad as mg
    from minigrad.optim import AdamW

    from gpt.data import DataLoader
    from gpt.finetune.instruct import (
        InstructionDataset,
        add_demo_flaws,
        add_lora,
        custom_collate_fn,
        demo_tokenizer,
        exact_match_accuracy,
        generate_responses,
        load_instruct_checkpoint,
        responses_path,
        save_instruct_checkpoint,
        split_instruction_data,
        write_responses,
    )
    from gpt.model import count_parameters
    from gpt.train import Trainer, calc_loss_loader

    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))

    # --- a run to resume, or a new one
    ck = None
    if args.resume:
        if args.checkpoint or args.gpt2:
            raise CLIError("--resume continues a saved run; leave out --checkpoint/--gpt2")
        ck = open_checkpoint(load_instruct_checkpoint, args.resume, load_training_state=True)
        if ck.trainer_state is None or ck.info.get("task") != "instruction" or "settings" not in ck.info:
            raise CLIError(f"{ck.path}: holds no instruction fine-tuning run to resume")
    elif not (args.data or args.demo):
        raise CLIError("say what to train on: --data FILE.json (a list of {instruction, input, output}) or --demo")
    elif args.data and not (args.checkpoint or args.gpt2):
        raise CLIError("say which model to fine-tune: --checkpoint DIR (from 'pretrain') or --gpt2 model.safetensors "
                       "(only --demo can start from scratch)")
    settings = _settings(args, ck.info["settings"] if ck is not None else None)
    scratch = settings["config"] is not None
    if args.config is not None and ck is None and not (args.demo and not (args.checkpoint or args.gpt2)):
        raise CLIError("--config chooses the demo's model from scratch; "
                       "it does not apply with --data/--checkpoint/--gpt2")
    if settings["lora_rank"] is None and settings["lora_alpha"] is not None:
        raise CLIError("--lora-alpha needs --lora-rank")
    out = run_folder(args)

    # --- data: read, split in file order (85 % train, 10 % test, 5 % validation)
    entries, fingerprint = _load_entries(settings)
    if ck is not None and ck.info.get("data_sha256") != fingerprint:
        raise CLIError("the data differs from the data this run started with; restore the original file")
    train, test, val = split_instruction_data(entries)
    if settings["demo_flaws"]:
        if not settings["demo"]:
            raise CLIError("--demo-flaws makes noisy labels for the demo's questions; it needs --demo")
        train = add_demo_flaws(train, settings["demo_flaws"], settings["seed"])
        val = add_demo_flaws(val, settings["demo_flaws"], settings["seed"] + 1)
        say(f"noisy labels (--demo-flaws {settings['demo_flaws']:g}): {sum('flaw' in e for e in train)} of "
            f"{len(train)} training answers carry a systematic flaw")
    source = "the demo data" if settings["demo"] else settings["data"]
    if not train:
        raise CLIError(f"{source}: {len(entries)} entries are too few to split into training, test and "
                       "validation parts")
    if args.responses:
        answers_file = Path(args.responses)
    elif ck is not None and ck.info.get("responses"):
        answers_file = Path(ck.info["responses"])
    else:
        answers_file = out / "demo-test-with-response.json" if settings["demo"] else responses_path(settings["data"])
    answers_dir = answers_file.parent       # (the checkpoint folder is made when the first checkpoint is saved)
    if test and answers_dir.resolve() != out.resolve():
        if not answers_dir.is_dir():
            raise CLIError(f"{answers_dir}: no such folder for the test answers; choose a file with --responses")
        if not os.access(answers_dir, os.W_OK):
            raise CLIError(f"{answers_dir}: cannot write the test answers there; choose a file with --responses")

    # --- model and tokenizer
    if ck is not None:
        model, tokenizer = ck.model, ck.tokenizer
    elif scratch:
        tokenizer = demo_tokenizer()
        model = _scratch_model(settings, tokenizer)
    else:
        model, tokenizer = _load_start_model(args)
    try:
        pad_token_id = tokenizer.eot_token
    except ValueError:
        raise CLIError("the tokenizer has no <|endoftext|> token to end the answers with") from None
    context = model.cfg.context_length
    if settings["max_length"] is not None and settings["max_length"] > context:
        raise CLIError(f"--max-length {settings['max_length']} exceeds the model's context length {context}")
    max_length = settings["max_length"] or context

    # --- batches: the book's collate function, cut to max_length
    mask = settings["mask_prompt"]
    train_set = InstructionDataset(train, tokenizer, return_prompt_length=True)
    if mask:   # an entry whose prompt fills max_length would leave nothing to learn (a NaN loss)
        keep = [i for i, p in enumerate(train_set.prompt_lengths) if p < max_length]
        if not keep:
            raise CLIError(f"every training prompt is at least {max_length} tokens long, so --mask-prompt leaves "
                           "nothing to learn; use a larger --max-length")
        if len(keep) < len(train):
            say(f"note: {len(train) - len(keep)} training entries have prompts of {max_length}+ tokens and are "
                "left out (--mask-prompt)")
            train = [train[i] for i in keep]
            train_set = InstructionDataset(train, tokenizer, return_prompt_length=True)
    too_long = sum(len(ids) > max_length for ids in train_set.encoded_texts)
    if too_long:
        say(f"note: {too_long} training entries are longer than {max_length} tokens and are cut")
    collate = functools.partial(custom_collate_fn, pad_token_id=pad_token_id, allowed_max_length=max_length,
                                mask_prompt=mask)
    batch = settings["batch_size"]
    train_loader = DataLoader(train_set, batch_size=batch, shuffle=True, drop_last=True, seed=settings["seed"],
                              collate_fn=collate)
    val_loader = DataLoader(InstructionDataset(val, tokenizer, return_prompt_length=True), batch_size=batch,
                            drop_last=False, collate_fn=collate) if val else None
    if len(train_loader) == 0:
        raise CLIError(f"{len(train)} training entries make no batch of {batch}; use a smaller --batch-size")
    total = settings["epochs"] * len(train_loader)
    warmup = settings["warmup"] if settings["warmup"] is not None else total // 10
    min_lr = settings["min_lr"]
    if min_lr is None:                       # constant, as the book; decaying to a tenth from scratch
        min_lr = settings["lr"] / 10 if scratch else settings["lr"]
    eval_every = settings["eval_every"] or max(1, total // 10)

    # --- what trains: everything, or only LoRA matrices (rebuilt by load_instruct_checkpoint on resume)
    if ck is None and settings["lora_rank"] is not None:
        mg.manual_seed(settings["seed"])
        add_lora(model, settings["lora_rank"], settings["lora_alpha"])
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = AdamW(params, lr=settings["lr"], weight_decay=settings["weight_decay"])
    trainer = Trainer(model, optimizer, train_loader, val_loader, total_steps=total, peak_lr=settings["lr"],
                      warmup_steps=warmup, initial_lr=settings["lr"] * 0.01 if warmup else None, min_lr=min_lr,
                      grad_clip=settings["grad_clip"], eval_freq=eval_every, eval_iter=settings["eval_batches"])
    if ck is not None:
        restore_training_state(ck, optimizer, trainer, total, out, "--epochs")
        say(f"resuming {out} at step {trainer.state.step} of {total}")

    info = {"settings": settings, "data_sha256": fingerprint, "responses": str(answers_file),
            "instruct": {"pad_token_id": pad_token_id, "max_length": max_length}}
    if ck is not None and "before" in ck.info:
        info["before"] = ck.info["before"]

    def checkpoint() -> Path:
        return save_instruct_checkpoint(out, model, tokenizer=tokenizer, optimizer=optimizer,
                                        trainer_state=trainer.state_dict(), info=info)

    saver = RunSaver(out, checkpoint, resumed_from=ck)

    max_new = settings["max_new_tokens"]
    cfg = model.cfg
    say(f"model: {cfg.n_layers} layers, {cfg.n_heads} heads, width {cfg.emb_dim}, context {context}"
        + (" (random initialisation)" if scratch and ck is None else "")
        + f"; trainable parameters {count_parameters(model, trainable_only=True):,} of {count_parameters(model):,}")
    say(f"data: {source}: {len(train)} training, {len(test)} test, {len(val)} validation entries; "
        f"{len(train_loader)} batches of {batch} per epoch; {total} steps")
    if settings["demo"] and ck is None and test:
        before = exact_match_accuracy(test, generate_responses(model, tokenizer, test, max_new), by_task=True)
        info["before"] = list(before)
        say(f"exact-match accuracy before fine-tuning: {_percent_by_task(*before)}")

    progress = Progress(total, args.quiet)
    sample = (val or test or train)[0]

    def on_eval(t, train_loss: float, val_loss: float) -> None:
        progress.clear()
        say(f"step {t.state.step} (epoch {(t.state.step - 1) // len(train_loader) + 1}): "
            f"train loss {train_loss:.3f}, val loss {val_loss:.3f}")
        if not args.quiet:
            answer = generate_responses(model, tokenizer, [sample], max_new)[0]
            question = sample["instruction"] + (f" | {sample['input']}" if sample.get("input") else "")
            say(f"  {_one_line(question)!r} -> {_one_line(answer)!r}")
        saver.save(t)

    train_until_done(trainer, progress, on_eval, saver)

    s = trainer.state
    final = saver.save(trainer)
    if stopped_early(trainer, total, final, "finetune-instruct", out):
        return 130
    say(f"trained {s.step} steps ({s.tokens_seen:,} tokens) in {duration(s.elapsed)}; checkpoint: {final}")
    if val_loader is not None:
        model.eval()
        with mg.no_grad():
            say(f"validation loss {calc_loss_loader(val_loader, model):.3f}")
    if not test:
        print("no test entries to answer (the data is too small for a test part)")
        return 0
    answers = generate_responses(model, tokenizer, test, max_new)
    write_responses(test, answers, answers_file)
    say(f"answers to the {len(test)} test entries: {answers_file}")
    say(f"ask it yourself: python -m gpt chat --checkpoint {out}")
    if settings["demo"]:
        after = exact_match_accuracy(test, answers, by_task=True)
        if "before" in info:
            print(f"exact-match accuracy before fine-tuning: {_percent_by_task(*info['before'])}")
        print(f"exact-match accuracy after fine-tuning:  {_percent_by_task(*after)}")
    else:
        print(f"responses: {answers_file}")
    return 0
