"""Chapter 6, "Fine-tuning for classification": a spam classifier, then the same with LoRA (appendix E).

    6.2  the data: labelled messages, balanced, split 70 / 10 / 20
    6.3  data loaders: every message padded with <|endoftext|> to the longest training message
    6.4  a pretrained model (here: a small GPT pretrained for a minute on the messages themselves)
    6.5  a classification head: out_head -> Linear(emb_dim, 2); all frozen but the last block,
         the final norm and the head
    6.6  loss and accuracy on the last token's logits, before fine-tuning (about chance)
    6.7  fine-tuning with train_classifier_simple (the book's loop and five lists)
    6.8  classify(): the book's two example texts
    E    LoRA: freeze everything, LoRA on every Linear, fine-tune, then merge_lora for export

The book fine-tunes GPT-2 small on the SMS Spam Collection (747 spam messages and as many ham after
balancing; 1,045 / 149 / 300 after the split) to about 97 % test accuracy. To finish in seconds on a
laptop CPU without downloads, this script generates a spam/ham-like data set
(``gpt.finetune.spam_demo``) and starts from a small GPT it pretrains itself; pass ``--sms FILE`` to
use the real collection instead (``python -m gpt download sms-spam``). ``--fast`` shrinks
everything to a few seconds.

    python examples/ch06_classification.py                 (about 10 s)
    python examples/ch06_classification.py --fast          (seconds)
"""
from __future__ import annotations

import sys

import numpy as np
from _common import Stopwatch, parse_args, section

import minigrad as mg
from minigrad.optim import AdamW

from gpt.data import DataLoader, GPTDataset
from gpt.finetune.classify import (
    ClassificationDataset,
    balance,
    calc_accuracy_loader,
    calc_loss_loader,
    classify,
    encode_labels,
    label_names,
    prepare_for_classification,
    random_split,
    read_labeled_file,
    train_classifier_simple,
)
from gpt.finetune.lora import merge_lora
from gpt.finetune.spam_demo import demo_messages
from gpt.model import GPTConfig, GPTModel, count_parameters
from gpt.tokenizer import BPETokenizer
from gpt.train import train_model_simple

SETTINGS = {   # normal run / --fast
    "messages": (1000, 240),
    "vocab_size": (512, 300),
    "model": (dict(emb_dim=64, n_heads=4, n_layers=2), dict(emb_dim=32, n_heads=2, n_layers=2)),
    "pretrain_epochs": (4, 1),
    "finetune_epochs": (5, 2),
    "lora_epochs": (5, 2),
}


def main() -> int:
    def options(p):
        p.add_argument("--sms", metavar="FILE", help="the SMS Spam Collection file (label<TAB>text lines) "
                                                     "instead of the generated messages")

    args = parse_args("Chapter 6: fine-tune a small GPT into a spam classifier, then do it again with LoRA.", options)
    pick = {k: v[1] if args.fast else v[0] for k, v in SETTINGS.items()}

    section("6.2 Preparing the dataset")
    if args.sms:
        examples = read_labeled_file(args.sms)
        print(f"Read {len(examples)} messages from {args.sms}")
    else:
        examples = demo_messages(pick["messages"], seed=123)
        print(f"Generated {len(examples)} messages (gpt.finetune.spam_demo), for example:")
        for ex in examples[:4]:
            print(f"  {ex.label:5} {ex.text}")
    labels = label_names(ex.label for ex in examples)            # ["ham", "spam"]: ham = 0, spam = 1
    counts = {name: sum(ex.label == name for ex in examples) for name in labels}
    print("Label counts:", counts)                               # book: ham 4825, spam 747
    balanced = balance(examples, seed=123)
    print("Balanced:", {name: sum(ex.label == name for ex in balanced) for name in labels})
    train_df, validation_df, test_df = random_split(balanced, 0.7, 0.1, seed=123)
    print(f"Split: {len(train_df)} training, {len(validation_df)} validation, {len(test_df)} test")  # book: 1045/149/300

    section("6.3 Creating data loaders")
    with Stopwatch() as t:
        tokenizer = BPETokenizer.train([ex.text for ex in examples], pick["vocab_size"], verbose=False)
    print(f"Trained a {tokenizer.n_vocab}-token BPE vocabulary on the messages in {t.seconds:.1f} s "
          "(the book uses GPT-2's 50,257 tokens)")
    pad = tokenizer.eot_token

    def dataset(part, max_length=None):
        return ClassificationDataset([ex.text for ex in part], encode_labels([ex.label for ex in part], labels),
                                     tokenizer, max_length=max_length, pad_token_id=pad)

    train_dataset = dataset(train_df)
    print("Longest training message:", train_dataset.max_length, "tokens")   # book: 120
    val_dataset = dataset(validation_df, train_dataset.max_length)
    test_dataset = dataset(test_df, train_dataset.max_length)
    batch_size = 8
    train_loader = DataLoader(train_dataset, batch_size=batch_size, shuffle=True, drop_last=True, seed=123)
    val_loader = DataLoader(val_dataset, batch_size=batch_size, drop_last=False)
    test_loader = DataLoader(test_dataset, batch_size=batch_size, drop_last=False)
    input_batch, target_batch = next(iter(DataLoader(train_dataset, batch_size=batch_size)))
    print("Input batch dimensions:", input_batch.shape)        # (8, max_length)
    print("Label batch dimensions", target_batch.shape)         # (8,)
    print(f"{len(train_loader)} training batches, {len(val_loader)} validation batches, {len(test_loader)} test batches")

    section("6.4 A pretrained model")
    cfg = GPTConfig(vocab_size=tokenizer.n_vocab, context_length=128, drop_rate=0.0, qkv_bias=True, **pick["model"])
    if train_dataset.max_length > cfg.context_length:
        print(f"(messages are cut to the context length, {cfg.context_length} tokens)")
        train_dataset = dataset(train_df, cfg.context_length)
    mg.manual_seed(123)
    model = GPTModel(cfg)
    # next-token prediction on the training messages, joined by <|endoftext|> (validation: its own messages)
    stream = tokenizer.encode("<|endoftext|>".join(ex.text for ex in train_df), allowed_special="all")
    val_stream = tokenizer.encode("<|endoftext|>".join(ex.text for ex in validation_df), allowed_special="all")
    lm_loader = DataLoader(GPTDataset(stream, 64, 64), batch_size=8, shuffle=True, seed=123)
    lm_val = DataLoader(GPTDataset(val_stream, 64, 64), batch_size=8, drop_last=False)
    print(f"{count_parameters(model):,} parameters; pretraining on the training messages "
          f"({len(stream):,} tokens, {pick['pretrain_epochs']} epoch(s)):")
    optimizer = AdamW(model.parameters(), lr=2e-3, weight_decay=0.1)
    with Stopwatch() as t:
        train_model_simple(model, lm_loader, lm_val, optimizer, num_epochs=pick["pretrain_epochs"],
                           eval_freq=max(1, len(lm_loader)), eval_iter=2, start_context="Congratulations! You",
                           tokenizer=tokenizer)
    print(f"Pretrained in {t.seconds:.1f} s")
    pretrained = {k: v.copy() for k, v in model.state_dict().items()}   # kept for the LoRA run below

    section("6.5 Adding a classification head")
    mg.manual_seed(123)
    prepare_for_classification(model, num_classes=len(labels), trainable_blocks=1)
    print("New head:", model.out_head)
    print(f"Trainable parameters: {count_parameters(model, trainable_only=True):,} of {count_parameters(model):,}")
    inputs = np.array([tokenizer.encode("Do you have time")])
    with mg.no_grad():
        outputs = model(inputs)
    print("Inputs dimensions:", inputs.shape)                   # (1, 4) with GPT-2's tokens
    print("Outputs dimensions:", outputs.shape)                 # (1, tokens, 2): two logits per position
    print("Last output token:", outputs.data[:, -1, :])         # the one that saw the whole text

    section("6.6 Loss and accuracy before fine-tuning")
    print(f"Training accuracy: {calc_accuracy_loader(train_loader, model, num_batches=10):.2%}")  # book: 46.25%
    print(f"Validation accuracy: {calc_accuracy_loader(val_loader, model, num_batches=10):.2%}")
    print(f"Test accuracy: {calc_accuracy_loader(test_loader, model, num_batches=10):.2%}")
    with mg.no_grad():
        print(f"Training loss: {calc_loss_loader(train_loader, model, num_batches=5):.3f}")   # book: 2.453
        print(f"Validation loss: {calc_loss_loader(val_loader, model, num_batches=5):.3f}")

    section("6.7 Fine-tuning the model on supervised data")
    optimizer = AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.1)
    with Stopwatch() as t:
        train_losses, val_losses, train_accs, val_accs, examples_seen = train_classifier_simple(
            model, train_loader, val_loader, optimizer, num_epochs=pick["finetune_epochs"], eval_freq=50, eval_iter=5)
    print(f"Training completed in {t.seconds / 60:.2f} minutes; {examples_seen} examples seen")
    # the book uses lr 5e-5 for GPT-2; a small model pretrained for a minute learns faster with 1e-3
    for name, loader in (("Training", train_loader), ("Validation", val_loader), ("Test", test_loader)):
        print(f"{name} accuracy: {calc_accuracy_loader(loader, model):.2%}")   # book: 97.21% / 97.32% / 95.67%

    section("6.8 Using the LLM as a spam classifier")
    for text in ("You are a winner you have been specially selected to receive $1000 cash or a $2000 award.",
                 "Hey, just wanted to check if we're still on for dinner tonight? Let me know!"):
        label = classify(text, model, tokenizer, max_length=train_dataset.max_length, pad_token_id=pad, labels=labels)
        print(f"{label:5} <- {text}")                           # book: spam, not spam

    section("Appendix E: the same with LoRA")
    lora_model = GPTModel(cfg)
    lora_model.load_state_dict(pretrained)
    mg.manual_seed(123)
    prepare_for_classification(lora_model, len(labels), lora_rank=8, lora_alpha=8)
    print(f"Trainable LoRA parameters: {count_parameters(lora_model, trainable_only=True):,} "
          f"(of {count_parameters(lora_model):,}; GPT-2 small with rank 16: 2,666,528)")
    print(f"Test accuracy before: {calc_accuracy_loader(test_loader, lora_model):.2%}")
    optimizer = AdamW([p for p in lora_model.parameters() if p.requires_grad], lr=3e-3, weight_decay=0.1)
    with Stopwatch() as t:
        train_classifier_simple(lora_model, train_loader, val_loader, optimizer, num_epochs=pick["lora_epochs"],
                                eval_freq=50, eval_iter=5)
    print(f"LoRA fine-tuning took {t.seconds / 60:.2f} minutes")
    print(f"Test accuracy after: {calc_accuracy_loader(test_loader, lora_model):.2%}")
    lora_model.eval()
    with mg.no_grad():
        before = lora_model(input_batch).data
        merge_lora(lora_model)
        after = lora_model(input_batch).data
    print(f"merge_lora: plain Linear layers again, {count_parameters(lora_model):,} parameters; "
          f"largest logit change {np.abs(after - before).max():.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
