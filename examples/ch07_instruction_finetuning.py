"""Chapter 7, "Fine-tuning to follow instructions", at laptop scale.

    7.2  the data: {instruction, input, output} entries, the Alpaca prompt, the 85 / 10 / 5 split
    7.3  batches: the book's custom_collate_fn step by step (padding, -100 targets, truncation), and
         exercise 7.2's masking of the prompt
    7.4  data loaders with collate_fn
    7.5  the model before fine-tuning, and how it answers
    7.6  fine-tuning with the book's train_model_simple (chapter 5's loop: the loss already skips -100)
    7.7  answering the test set, saving the answers as *-with-response.json
    7.8  evaluating: exact-match accuracy before and after, per task

The book fine-tunes GPT-2 medium (355M parameters) on 1,100 entries and asks Llama 3 to grade the
answers. To finish in a few minutes on a laptop CPU without downloads, the training here uses a data
set the project generates (``gpt.finetune.instruct.demo_instruction_data``: upper-case a word,
write it backwards, count its letters, count the words of a text, add two numbers), whose answers can
be checked exactly, and a small GPT trained from random initialisation. When the book's
instruction-data.json is found (--data-dir, GPT_REFERENCE_DATA or data/book), sections 7.2-7.4 also show it,
with GPT-2's tokenizer.

    python examples/ch07_instruction_finetuning.py [--out DIR]     (a few minutes)
    python examples/ch07_instruction_finetuning.py --fast          (seconds)
"""
from __future__ import annotations

import functools
import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import Stopwatch, gpt2_tokenizer, parse_args, reference_file, section

import minigrad as mg
from minigrad.optim import AdamW

from gpt.data import DataLoader
from gpt.finetune.instruct import (
    InstructionDataset,
    custom_collate_fn,
    demo_instruction_data,
    demo_tokenizer,
    exact_match_accuracy,
    format_input,
    format_response,
    generate_response,
    generate_responses,
    load_instruction_data,
    split_instruction_data,
    write_responses,
)
from gpt.model import GPTConfig, GPTModel, count_parameters
from gpt.train import calc_loss_loader, train_model_simple

SETTINGS = {   # normal run / --fast (one task, the quickest to learn)
    "entries": (1000, 200),
    "tasks": (None, ["count_letters"]),
    "model": (dict(emb_dim=128, n_heads=4, n_layers=4), dict(emb_dim=32, n_heads=2, n_layers=2)),
    "epochs": (10, 8),
    "batch_size": (8, 16),
    "lr": (1e-3, 5e-3),
}


def show_book_data(args) -> None:
    """Sections 7.2-7.4 on the book's instruction-data.json with GPT-2's tokenizer, when available."""
    path = reference_file(args, "instruction-data.json")
    if path is None:
        print("(The book's instruction-data.json is not available: 'python -m gpt download book-data' puts it "
              "in data/book, where this looks by default, or pass --data-dir DIR.)")
        return
    data = load_instruction_data(path)
    print("Number of entries:", len(data))                                       # 1100
    print("Example entry:\n", data[50])
    print("\n--- format_input(data[50]) + desired response ---")
    print(format_input(data[50]) + format_response(data[50]))
    print("\n--- an entry with an empty input: no '### Input:' section ---")
    print(format_input(data[999]) + format_response(data[999]))
    train_data, test_data, val_data = split_instruction_data(data)
    print(f"\nTraining set length: {len(train_data)}")                           # 935
    print(f"Validation set length: {len(val_data)}")                             # 55
    print(f"Test set length: {len(test_data)}")                                  # 110
    tokenizer = gpt2_tokenizer(args)
    if tokenizer is None:
        return
    print("\n<|endoftext|> in GPT-2's vocabulary:",
          tokenizer.encode("<|endoftext|>", allowed_special={"<|endoftext|>"}))                # [50256]
    collate = functools.partial(custom_collate_fn, allowed_max_length=1024)   # 50256 pads, as in the book
    loader = DataLoader(InstructionDataset(train_data, tokenizer), batch_size=8, shuffle=True, drop_last=True,
                        seed=123, collate_fn=collate)
    shapes = [inputs.shape for inputs, _ in loader]
    print(f"Train loader: {len(shapes)} batches; the first five: "
          + ", ".join(f"{s[0]}x{s[1]}" for s in shapes[:5]) + f"; longest {max(s[1] for s in shapes)} tokens")
    print("(Each batch is as long as its longest entry: the book's PyTorch shuffle differs, so its "
          "shapes do too.)")


def main() -> int:
    def options(p):
        p.add_argument("--out", metavar="DIR", help="keep the answers file in DIR (default: a temporary folder)")

    args = parse_args("Chapter 7: fine-tune a small GPT to follow instructions and grade its answers.", options)
    pick = {k: v[1] if args.fast else v[0] for k, v in SETTINGS.items()}
    np.set_printoptions(linewidth=120)

    section("7.2 Preparing a dataset for supervised instruction fine-tuning")
    show_book_data(args)
    data = demo_instruction_data(pick["entries"], seed=123, tasks=pick["tasks"])
    print(f"\nThe demo data: {len(data)} generated entries, for example:")
    for entry in data[:5]:
        print(f"  {entry['task']:<13} {entry['instruction']!r:<40} input {entry['input']!r:<24} "
              f"output {entry['output']!r}")
    train_data, test_data, val_data = split_instruction_data(data)     # in file order, as the book
    print(f"Training set length: {len(train_data)}\nValidation set length: {len(val_data)}\n"
          f"Test set length: {len(test_data)}")
    print("\nThe prompt of the first training entry, with its response:\n" + "-" * 40)
    print(format_input(train_data[0]) + format_response(train_data[0]))

    section("7.3 Organizing data into training batches")
    inputs_1, inputs_2, inputs_3 = [0, 1, 2, 3, 4], [5, 6], [7, 8, 9]
    batch = (inputs_1, inputs_2, inputs_3)
    inputs, targets = custom_collate_fn(batch)
    print("The book's three short sequences, padded with 50256 (<|endoftext|>) to the longest + 1:")
    print("inputs:\n", inputs)
    print("targets (inputs shifted by one; every padding target but the first is -100):\n", targets)
    print("allowed_max_length=3 cuts both:\n", custom_collate_fn(batch, allowed_max_length=3)[1])
    # exercise 7.2: also hide the prompt (here: the first 3 tokens of each sequence, or all of [5, 6])
    print("mask_prompt=True with prompt lengths 3, 2, 3 (exercise 7.2):\n",
          custom_collate_fn([(inputs_1, 3), (inputs_2, 2), (inputs_3, 3)], mask_prompt=True)[1])
    tokenizer = demo_tokenizer()
    print(f"\nThe demo's tokenizer: {tokenizer.n_vocab} tokens (GPT-2 has 50,257): one per word of the prompt "
          "template,\nsingle letters for everything else, so that a small model can see the letters it is asked about:")
    ids = tokenizer.encode(format_input(train_data[0]) + format_response(train_data[0]))
    print(" ", [tokenizer.decode([i]) for i in ids][-16:])
    print(f"  {len(ids)} tokens; <|endoftext|> is {tokenizer.eot_token}")

    section("7.4 Creating data loaders for an instruction dataset")
    context_length = 128
    # Exercise 7.2's prompt masking: the loss is then all about the answers, which a small model
    # trained from scratch learns much better (about 45 % exact match without it, 65 % with it)
    collate = functools.partial(custom_collate_fn, pad_token_id=tokenizer.eot_token,
                                allowed_max_length=context_length, mask_prompt=True)
    batch_size = pick["batch_size"]
    train_loader = DataLoader(InstructionDataset(train_data, tokenizer, return_prompt_length=True),
                              batch_size=batch_size, shuffle=True, drop_last=True, seed=123, collate_fn=collate)
    val_loader = DataLoader(InstructionDataset(val_data, tokenizer, return_prompt_length=True),
                            batch_size=batch_size, drop_last=False, collate_fn=collate)
    print("Train loader:")
    for inputs, targets in list(train_loader)[:4]:
        print(" ", inputs.shape, targets.shape)
    kept = [int(t) for t in targets[0] if t != -100]
    print(f"The targets of the first row: {len(targets[0]) - len(kept)} of {len(targets[0])} are -100 (prompt and "
          f"padding); the rest are the answer and its end:\n  {tokenizer.decode(kept)!r}")
    print(f"{len(train_loader)} training batches, {len(val_loader)} validation batches")

    section("7.5 The model before fine-tuning")
    cfg = GPTConfig(vocab_size=tokenizer.n_vocab, context_length=context_length, drop_rate=0.0,
                    **pick["model"])
    mg.manual_seed(123)
    model = GPTModel(cfg)
    print(f"A GPT with {cfg.n_layers} layers of width {cfg.emb_dim} from random initialisation, "
          f"{count_parameters(model):,} parameters")
    print("(The book loads GPT-2 medium here; with 355M parameters its fine-tuning takes hours on a CPU.)")
    entry = val_data[0]
    print("Prompt:\n" + format_input(entry))
    print("Answer of the untrained model:", repr(generate_response(model, tokenizer, entry, max_new_tokens=12)))
    before = exact_match_accuracy(test_data, generate_responses(model, tokenizer, test_data, max_new_tokens=16),
                                  by_task=True)
    model.eval()
    with mg.no_grad():
        print(f"Training loss: {calc_loss_loader(train_loader, model, num_batches=5):.3f}")
        print(f"Validation loss: {calc_loss_loader(val_loader, model, num_batches=5):.3f}")

    section(f"7.6 Fine-tuning for {pick['epochs']} epoch(s) with train_model_simple")
    optimizer = AdamW(model.parameters(), lr=pick["lr"], weight_decay=0.1)
    with Stopwatch() as clock:
        train_losses, val_losses, tokens_seen = train_model_simple(
            model, train_loader, val_loader, optimizer, num_epochs=pick["epochs"], eval_freq=25, eval_iter=5,
            start_context=format_input(val_data[0]), tokenizer=tokenizer,
        )
    print(f"Training completed in {clock.seconds / 60:.2f} minutes; losses went from {train_losses[0]:.3f} / "
          f"{val_losses[0]:.3f} to {train_losses[-1]:.3f} / {val_losses[-1]:.3f} (training / validation)")

    section("7.7 Extracting and saving responses")
    with Stopwatch() as clock:
        answers = generate_responses(model, tokenizer, test_data, max_new_tokens=16)
    print(f"Answered the {len(test_data)} test entries in {clock.seconds:.1f} s. The first three:")
    for entry, answer in list(zip(test_data, answers))[:3]:
        print(format_input(entry))
        print(f"\nCorrect response:\n>> {entry['output']}")
        print(f"\nModel response:\n>> {answer}")
        print("-" * 40)
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(args.out) if args.out else Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = write_responses(test_data, answers, out_dir / "demo-test-with-response.json")
        print("Saved the answers to", path if args.out else f"{path.name} (in a temporary folder; --out keeps it)")

    section("7.8 Evaluating the fine-tuned model: exact match")
    after = exact_match_accuracy(test_data, answers, by_task=True)
    print("(The book asks Llama 3 to score free-form answers from 0 to 100; these answers are checkable.)")
    print(f"{'task':<14}{'before':>8}{'after':>8}")
    for task in sorted(after[1]):
        print(f"{task:<14}{before[1][task]:>8.0%}{after[1][task]:>8.0%}")
    print(f"Exact-match accuracy before fine-tuning: {before[0]:.1%}")
    print(f"Exact-match accuracy after fine-tuning: {after[0]:.1%}")
    print("\nThe same from the command line, with checkpoints, Ctrl-C and --resume:\n"
          "  python -m gpt finetune-instruct --demo --out runs/instruct\n"
          "  python -m gpt chat --checkpoint runs/instruct --prompt 'Convert the word to upper case.' --input lion\n"
          "and on the book's data with GPT-2's weights (python -m gpt download gpt2-medium; "
          "python -m gpt download instruction-data):\n"
          "  python -m gpt finetune-instruct --data instruction-data.json --gpt2 PATH/model.safetensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
