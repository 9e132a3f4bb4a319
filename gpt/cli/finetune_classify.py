"""``python -m gpt finetune-classify`` and ``python -m gpt classify``: chapter 6 from the command line.

``finetune-classify`` turns a pretrained model (a checkpoint of ``pretrain``, or GPT-2's weights) into
a classifier of the labelled texts in a file (``label<TAB>text`` lines as in the SMS Spam Collection,
or a CSV file with a header): it splits the data 70/10/20 with a seed, replaces the output head,
freezes all but the last block (or adds LoRA layers), trains with evaluation and checkpoints, and ends
with the test accuracy. Ctrl-C saves a checkpoint; ``--resume DIR`` continues it exactly.
``classify`` prints the label the fine-tuned model gives a text.

``--arch bert`` fine-tunes an encoder instead (gpt.finetune.classify_encoder): the text's vector is
its [CLS] token's or the mean of its tokens' (``--pooling``), read by a new head. The encoder comes
from ``--hf DIR`` (a BERT or sentence-transformers folder such as all-MiniLM-L6-v2, with its
tokenizer.json), or is trained from scratch (a small BERT with a WordPiece vocabulary made from the
training texts; every parameter trains). Data, split, trainer, checkpoints and resume are the GPT's.
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from gpt.cli import CLIError
from gpt.cli.common import (
    Progress, RunSaver, add_model_source, duration, fraction, load_model_and_tokenizer, non_negative_float,
    open_checkpoint, overlay_options, positive_int, restore_training_state, run_folder, stopped_early,
    train_until_done,
)

# the book's settings (section 6.7); --balance is the book's create_balanced_dataset
DEFAULTS = dict(epochs=5, batch_size=8, lr=5e-5, weight_decay=0.1, eval_every=50, eval_batches=5, seed=123,
                train_frac=0.7, val_frac=0.1, trainable_blocks="1", label_column="label", text_column="text",
                balance=False, max_length=None, lora_rank=None, lora_alpha=None, data=None, demo=None,
                arch="gpt", pooling=None, hf=None)
DEMO_SIZE = 1000
SCRATCH_LR = 1e-3      # --arch bert from scratch: the learning rate unless --lr says otherwise


def _blocks(text: str) -> str:
    if text != "all" and not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a number of blocks or 'all', got {text!r}")
    return text


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "finetune-classify", help="fine-tune a GPT into a text classifier (chapter 6)",
        description="Fine-tune a pretrained GPT to classify texts (the book's spam classifier, chapter 6). "
                    "The data is a file of 'label<TAB>text' lines (the SMS Spam Collection format) or a CSV "
                    "file with a header. Ctrl-C saves a checkpoint; --resume continues it exactly.")
    data = p.add_mutually_exclusive_group()
    data.add_argument("--data", metavar="FILE", help="labelled texts: label<TAB>text lines, or a .csv file with a header")
    data.add_argument("--demo", action="store_true", default=None,
                      help=f"use {DEMO_SIZE} generated spam/ham messages instead of a file")
    p.add_argument("--label-column", metavar="NAME", help="CSV column with the labels (default: label)")
    p.add_argument("--text-column", metavar="NAME", help="CSV column with the texts (default: text)")
    add_model_source(p, required=False,     # (--resume takes the model from the run instead)
                     checkpoint_help="start from a checkpoint written by 'python -m gpt pretrain'", hf=True,
                     hf_help="--arch bert: a BERT or sentence-transformers folder (config.json, model.safetensors, "
                             "tokenizer.json), e.g. all-MiniLM-L6-v2")
    p.add_argument("--arch", choices=("gpt", "bert"),
                   help="gpt (the book's: the last token's logits) or bert (an encoder: a pooled vector); "
                        "bert starts from --hf DIR (a BERT or sentence-transformers folder) or from scratch "
                        "(default: gpt)")
    p.add_argument("--pooling", choices=("cls", "mean"),
                   help="--arch bert: the [CLS] token's vector or the mean over the tokens (default: the --hf "
                        "folder's sentence-transformers pooling, else cls)")
    p.add_argument("--trainable-blocks", type=_blocks, metavar="N|all",
                   help="train the last N transformer blocks with the final norm and the head, or 'all' "
                        "parameters (default: 1, the book's choice; all for --arch bert from scratch)")
    p.add_argument("--lora-rank", type=positive_int, metavar="R",
                   help="freeze the whole model and train LoRA matrices of rank R on every Linear (appendix E)")
    p.add_argument("--lora-alpha", type=non_negative_float, metavar="A", help="LoRA scaling alpha (default: the rank)")
    p.add_argument("--epochs", type=positive_int, metavar="N", help="passes over the training data (default: 5)")
    p.add_argument("--batch-size", type=positive_int, metavar="N", help="default: 8")
    p.add_argument("--lr", type=non_negative_float, metavar="LR",
                   help=f"learning rate (default: 5e-5; {SCRATCH_LR:g} for --arch bert from scratch)")
    p.add_argument("--weight-decay", type=non_negative_float, metavar="W", help="AdamW weight decay (default: 0.1)")
    p.add_argument("--max-length", type=positive_int, metavar="N",
                   help="cut texts to N tokens (default: the longest training text, at most the model's context)")
    p.add_argument("--balance", action="store_true", default=None,
                   help="downsample the larger classes to the size of the smallest, as the book does")
    p.add_argument("--train-frac", type=fraction, metavar="F", help="share of the data for training (default: 0.7)")
    p.add_argument("--val-frac", type=fraction, metavar="F",
                   help="share for validation (default: 0.1; the rest is the test set)")
    p.add_argument("--eval-every", type=positive_int, metavar="N",
                   help="evaluate loss and accuracy and save a checkpoint every N steps (default: 50)")
    p.add_argument("--eval-batches", type=positive_int, metavar="N", help="batches per evaluation (default: 5)")
    p.add_argument("--seed", type=int, metavar="N", help="seeds balancing, the split, the new head and shuffling (default: 123)")
    p.add_argument("--out", metavar="DIR", default="runs/classify", help="checkpoint folder (default: runs/classify)")
    p.add_argument("--resume", metavar="DIR", help="continue the run saved in DIR (up to --epochs in total)")
    p.add_argument("--quiet", action="store_true", help="print only the final accuracy")
    p.set_defaults(func=run_finetune)

    c = subparsers.add_parser(
        "classify", help="label texts with a classifier made by finetune-classify",
        description="Print the label a fine-tuned classifier gives each text, one per line.")
    c.add_argument("--checkpoint", metavar="DIR", required=True, help="a checkpoint written by finetune-classify")
    c.add_argument("--text", nargs="+", required=True, metavar="TEXT", help="the text(s) to classify")
    c.set_defaults(func=run_classify)


# ---------------------------------------------------------------------- pieces
# what --resume may change; everything else shapes the data, the model or the optimizer
RESUME_OVERRIDES = ("epochs", "eval_every", "eval_batches", "data")


def _settings(args: argparse.Namespace, saved: dict | None) -> dict:
    """Command-line values over the saved run's (when resuming) over the defaults."""
    settings = overlay_options(dict(DEFAULTS, **(saved or {})), args, DEFAULTS, saved, RESUME_OVERRIDES)
    if args.data is not None:
        settings["demo"] = None
        settings["data"] = str(Path(args.data).resolve())
    return settings


def _load_examples(settings: dict):
    """(examples, fingerprint of the data) from --data or --demo; one-line errors."""
    from gpt.finetune.classify import read_labeled_file
    from gpt.finetune.spam_demo import demo_messages

    if settings.get("demo"):
        examples = demo_messages(DEMO_SIZE, seed=settings["seed"])
        return examples, f"demo-{DEMO_SIZE}-{settings['seed']}"
    path = Path(settings["data"])
    try:
        examples = read_labeled_file(path, settings["label_column"], settings["text_column"])
    except FileNotFoundError:
        raise CLIError(f"{path}: no such file (the SMS Spam Collection: 'python -m gpt download sms-spam')") from None
    except ValueError as e:   # empty, a folder, not UTF-8, a malformed line
        raise CLIError(str(e)) from None
    return examples, hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _refuse_classifier_checkpoint(directory: str) -> None:
    """finetune-classify --checkpoint needs a language model; point classifier checkpoints at --resume."""
    from gpt.checkpoint import CheckpointError, resolve

    try:
        config = json.loads((resolve(directory) / "config.json").read_text(encoding="utf-8"))
    except (CheckpointError, OSError, ValueError):
        return  # load_model_and_tokenizer reports these
    if isinstance(config, dict) and isinstance(config.get("info"), dict) and config["info"].get("task") == "classification":
        raise CLIError(f"{directory}: is already a classifier; continue its training with --resume {directory}")


def _bert_folder(folder: str):
    """(BertModel, tokenizer, its sentence-transformers pooling or None) of --hf DIR for --arch bert."""
    from gpt.tokenizer import HFTokenizer

    path = Path(folder)
    if not path.is_dir():
        raise CLIError(f"{path}: no such folder (a BERT or sentence-transformers folder, e.g. all-MiniLM-L6-v2)")
    try:
        if (path / "modules.json").is_file():
            from gpt.embeddings import SentenceEncoder

            encoder = SentenceEncoder.from_pretrained(path)
            pooling = encoder.pooling[0] if len(encoder.pooling) == 1 and encoder.pooling[0] in ("cls", "mean") else None
            return encoder.model, encoder.tokenizer, pooling
        from gpt.architectures.bert import load_hf_bert

        model = load_hf_bert(path)
        return getattr(model, "bert", model), HFTokenizer.from_file(path / "tokenizer.json"), None
    except (OSError, ValueError, KeyError) as e:
        raise CLIError(f"{path}: not a BERT folder this project reads ({' '.join(str(e).split())})") from None


def _bert_model(settings: dict, train_texts, num_classes: int):
    """(BertClassifier, tokenizer) for --arch bert: from --hf, or from scratch (settings["pooling"] is set)."""
    from gpt.finetune.classify_encoder import BertClassifier, small_bert_config, word_tokenizer

    if settings["hf"]:
        bert, tokenizer, pooling = _bert_folder(settings["hf"])
    else:
        tokenizer, pooling = word_tokenizer(train_texts), None
        longest = max(len(tokenizer.encode(t)) for t in train_texts)
        bert = None
        context = min(512, settings["max_length"] or longest)
    pad = tokenizer.token_to_id("[PAD]")
    if pad is None:
        raise CLIError("the encoder's tokenizer has no [PAD] token to pad the texts with")
    settings["pooling"] = settings["pooling"] or pooling or "cls"
    if bert is None:
        import minigrad as mg

        mg.manual_seed(settings["seed"])
        bert = small_bert_config(tokenizer.vocab_size, context)
    return BertClassifier(bert, num_classes, settings["pooling"], pad_token_id=pad), tokenizer


def _examples_note(name: str, examples, labels) -> str:
    counts = {label: 0 for label in labels}
    for ex in examples:
        counts[ex.label] += 1
    return f"{name} {len(examples)} (" + ", ".join(f"{k} {v}" for k, v in counts.items()) + ")"


# ---------------------------------------------------------------------- finetune-classify
def run_finetune(args: argparse.Namespace) -> int:
    import minigrad as mg
    from minigrad.optim import AdamW

    from gpt.data import DataLoader
    from gpt.finetune.classify import (
        ClassificationDataset,
        ClassifierTrainer,
        balance,
        calc_accuracy_loader,
        encode_labels,
        freeze_for_classification,
        label_names,
        load_classifier,
        prepare_for_classification,
        random_split,
        save_classifier,
    )
    from gpt.finetune.lora import freeze_all_but_lora
    from gpt.model import count_parameters

    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))

    # --- where the model comes from: a run to resume, or a pretrained model
    ck = None
    if args.resume:
        if args.checkpoint or args.gpt2:
            raise CLIError("--resume continues a saved run; leave out --checkpoint/--gpt2")
        ck = open_checkpoint(load_classifier, args.resume, load_training_state=True)
        if ck.trainer_state is None or "settings" not in ck.info:
            raise CLIError(f"{ck.path}: holds no training state to resume from")
        if args.hf:
            raise CLIError("--resume continues a saved run; leave out --hf")
    elif args.arch == "bert":
        if args.checkpoint or args.gpt2:
            raise CLIError("--arch bert starts from --hf DIR (a BERT or sentence-transformers folder) or from "
                           "scratch; --checkpoint and --gpt2 are GPTs")
    elif args.hf:
        raise CLIError("--hf is for --arch bert (a BERT or sentence-transformers folder)")
    elif not (args.checkpoint or args.gpt2):
        raise CLIError("say which model to fine-tune: --checkpoint DIR (from 'pretrain') or --gpt2 model.safetensors"
                       " (or --arch bert)")
    saved = ck.info["settings"] if ck is not None else None
    if args.hf:
        args.hf = str(Path(args.hf).resolve())
    settings = _settings(args, saved)
    bert = settings["arch"] == "bert"
    if settings["pooling"] and not bert:
        raise CLIError("--pooling is for --arch bert; the GPT reads its last token")
    if not settings.get("data") and not settings.get("demo"):
        raise CLIError("say what to train on: --data FILE (label<TAB>text lines or a .csv) or --demo")
    if settings["lora_rank"] is None and settings["lora_alpha"] is not None:
        raise CLIError("--lora-alpha needs --lora-rank")
    if settings["lora_rank"] is not None and args.trainable_blocks is not None:
        raise CLIError("--trainable-blocks and --lora-rank exclude each other: with LoRA only the LoRA matrices train")
    if settings["train_frac"] <= 0 or settings["train_frac"] + settings["val_frac"] >= 1:
        raise CLIError(f"--train-frac {settings['train_frac']} and --val-frac {settings['val_frac']} leave no "
                       "training or no test data; they must be positive and add up to less than 1")
    out = run_folder(args)

    # --- data: read, number the labels, balance, split
    examples, fingerprint = _load_examples(settings)
    if ck is not None and ck.info.get("data_sha256") != fingerprint:
        raise CLIError("the data differs from the data this run started with; pass the same --data file")
    if not examples:
        raise CLIError(f"{settings['data']}: no labelled texts in the file")
    labels = label_names(ex.label for ex in examples)
    if len(labels) < 2:
        raise CLIError(f"{settings['data'] or 'the data'}: every text has the label {labels[0]!r}; "
                       "a classifier needs at least two classes")
    if ck is not None and ck.info["classifier"]["labels"] != labels:
        raise CLIError(f"{ck.path}: was trained on the labels {ck.info['classifier']['labels']}, the data has {labels}")
    if settings["balance"]:
        examples = balance(examples, seed=settings["seed"])
    train, val, test = random_split(examples, settings["train_frac"], settings["val_frac"], seed=settings["seed"])
    if not train or not test:
        raise CLIError(f"{len(examples)} examples are too few to split {settings['train_frac']}/"
                       f"{settings['val_frac']}/rest into training, validation and test sets")

    # --- model and tokenizer
    if ck is not None:
        model, tokenizer = ck.model, ck.tokenizer
    elif bert:
        model, tokenizer = _bert_model(settings, [ex.text for ex in train], len(labels))
        if not settings["hf"]:            # from scratch: nothing pretrained to keep, and a larger step
            if args.trainable_blocks is None and settings["lora_rank"] is None:
                settings["trainable_blocks"] = "all"
            if args.lr is None:
                settings["lr"] = SCRATCH_LR
    else:
        if args.checkpoint:
            _refuse_classifier_checkpoint(args.checkpoint)
        model, tokenizer = load_model_and_tokenizer(args)
    if bert:
        pad_token_id = model.pad_token_id
    else:
        try:
            pad_token_id = tokenizer.eot_token
        except ValueError:
            raise CLIError("the tokenizer has no <|endoftext|> token to pad the texts with") from None
    context = model.cfg.context_length
    max_length = settings["max_length"]
    if max_length is not None and max_length > context:
        raise CLIError(f"--max-length {max_length} exceeds the model's context length {context}")

    # --- datasets: pad to the longest training text (capped at the context length)
    def dataset(part, length):
        return ClassificationDataset([ex.text for ex in part], encode_labels([ex.label for ex in part], labels),
                                     tokenizer, max_length=length, pad_token_id=pad_token_id)

    train_set = dataset(train, max_length)
    if train_set.max_length > context:
        say(f"note: the longest training text has {train_set.max_length} tokens; cutting texts to the "
            f"model's context length {context}")
        train_set = dataset(train, context)
    length = train_set.max_length
    if ck is not None and ck.info["classifier"]["max_length"] != length:
        raise CLIError(f"{ck.path}: was trained on texts of {ck.info['classifier']['max_length']} tokens, "
                       f"not {length}; resume with the same --max-length")
    val_set = dataset(val, length) if val else None
    test_set = dataset(test, length)
    batch = settings["batch_size"]
    train_loader = DataLoader(train_set, batch_size=batch, shuffle=True, drop_last=True, seed=settings["seed"])
    val_loader = DataLoader(val_set, batch_size=batch, drop_last=False) if val_set is not None else []
    test_loader = DataLoader(test_set, batch_size=batch, drop_last=False)
    if len(train_loader) == 0:
        raise CLIError(f"{len(train)} training examples make no batch of {batch}; use a smaller --batch-size")

    # --- surgery: a new head, then what trains (saved runs are rebuilt by load_classifier)
    try:
        if ck is None:
            mg.manual_seed(settings["seed"])
            prepare_for_classification(model, len(labels), settings["trainable_blocks"],
                                       lora_rank=settings["lora_rank"], lora_alpha=settings["lora_alpha"])
            if bert:
                say(f"encoder: {'--hf ' + settings['hf'] if settings['hf'] else 'a small BERT from scratch'}, "
                    f"{settings['pooling']} pooling")
        elif settings["lora_rank"] is not None:
            freeze_all_but_lora(model)
        else:
            freeze_for_classification(model, settings["trainable_blocks"])
    except ValueError as e:
        raise CLIError(str(e).replace("trainable_blocks", "--trainable-blocks")) from None
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = AdamW(params, lr=settings["lr"], weight_decay=settings["weight_decay"])
    total = settings["epochs"] * len(train_loader)
    trainer = ClassifierTrainer(model, optimizer, train_loader, val_loader, total_steps=total, lr=settings["lr"],
                                eval_freq=settings["eval_every"], eval_iter=settings["eval_batches"])
    if ck is not None:
        restore_training_state(ck, optimizer, trainer, total, out, "--epochs")
        say(f"resuming {out} at step {trainer.state.step} of {total}")

    info = {"settings": settings, "data_sha256": fingerprint}

    def checkpoint() -> Path:
        return save_classifier(out, model, tokenizer=tokenizer, labels=labels, max_length=length,
                               pad_token_id=pad_token_id, optimizer=optimizer,
                               trainer_state=trainer.state_dict(), info=info)

    saver = RunSaver(out, checkpoint, resumed_from=ck)

    say("labels: " + ", ".join(f"{i} = {name}" for i, name in enumerate(labels)))
    say("data: " + "; ".join(_examples_note(n, part, labels)
                             for n, part in (("training", train), ("validation", val), ("test", test))))
    say(f"texts padded or cut to {length} tokens; {len(train_loader)} batches of {batch} per epoch; {total} steps")
    say(f"trainable parameters: {count_parameters(model, trainable_only=True):,} of {count_parameters(model):,}")
    if ck is None and not args.quiet:
        # a separate, unshuffled loader: reading train_loader here would start a pass of its own
        first = DataLoader(train_set, batch_size=batch, drop_last=False)
        eval_batches = settings["eval_batches"]
        say(f"before fine-tuning: training accuracy {calc_accuracy_loader(first, model, eval_batches):.2%}, "
            f"validation accuracy {calc_accuracy_loader(val_loader, model, eval_batches):.2%}")

    progress = Progress(total, args.quiet)

    def on_eval(t, train_loss: float, val_loss: float) -> None:
        progress.clear()
        h = t.history
        say(f"step {t.state.step} (epoch {(t.state.step - 1) // len(train_loader) + 1}): "
            f"train loss {train_loss:.3f}, val loss {val_loss:.3f}, "
            f"train acc {h['train_accs'][-1]:.2%}, val acc {h['val_accs'][-1]:.2%}")
        saver.save(t)

    train_until_done(trainer, progress, on_eval, saver)

    s = trainer.state
    final = saver.save(trainer)
    if stopped_early(trainer, total, final, "finetune-classify", out):
        return 130
    say(f"trained {s.step} steps ({trainer.history['examples_seen']:,} examples) in {duration(s.elapsed)}; "
        f"checkpoint: {final}")
    if val_set is not None:
        say(f"validation accuracy {calc_accuracy_loader(val_loader, model):.2%}")
    print(f"test accuracy {calc_accuracy_loader(test_loader, model):.2%}")
    return 0


# ---------------------------------------------------------------------- classify
def run_classify(args: argparse.Namespace) -> int:
    from gpt.finetune.classify import classify, load_classifier

    ck = open_checkpoint(load_classifier, args.checkpoint, load_training_state=False)
    c = ck.info["classifier"]
    for text in args.text:
        print(classify(text, ck.model, ck.tokenizer, max_length=c["max_length"], pad_token_id=c["pad_token_id"],
                       labels=c["labels"]), flush=True)
    return 0
