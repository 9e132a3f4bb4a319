"""Chapter 7's bonus, "Preference tuning with DPO", at laptop scale.

    1  preference data: {instruction, input, chosen, rejected}, chapter 7's Alpaca prompt
    2  batches: padding with <|endoftext|>, and the masks of the tokens that count -- token by token,
       ours (the answer and its end) next to the book's (the prompt plus two tokens hidden)
    3  the log-probability of a response, summed over its tokens (the paper) or averaged (the book)
    4  the DPO loss and the rewards, on one batch, checked against the formula
    5  training with a frozen reference: loss, reward margin, reward accuracy per evaluation
    6  before and after, on held-out pairs: the preference accuracy (how often the chosen answer is
       the more likely one) and the exact-match accuracy of the model's own answers

The book tunes its chapter-7 GPT-2 medium on 1,100 pairs whose rejected answers are impolite. To run
offline in minutes, this uses pairs made from chapter 7's demo questions (chosen: the exact answer;
rejected: a plausible wrong one) and the small instruction-tuned model of
``examples/ch07_instruction_finetuning.py``, trained here first -- on noisy labels: 70 % of its
upper-casing and letter-counting answers carry a systematic flaw (the word left in lower case, one
letter too many), so the model starts out making those mistakes, and the pairs' rejected answers for
those tasks are exactly them. DPO cannot teach a skill the model lacks (the demo's additions stay
wrong); it can make it prefer the answer it already half knows. When the book's
``instruction-data-with-preference.json`` is found (--data-dir, GPT_REFERENCE_DATA or data/book),
section 1 shows it too.

    python examples/ch07_dpo.py            (a few minutes)
    python examples/ch07_dpo.py --fast     (seconds)
"""
from __future__ import annotations

import functools
import sys

import numpy as np
from _common import Stopwatch, parse_args, reference_file, section

import minigrad as mg
from minigrad.optim import AdamW

from gpt.data import DataLoader
from gpt.finetune.dpo import (
    DPOTrainer,
    PreferenceBatch,
    PreferenceDataset,
    compute_dpo_loss_batch,
    compute_logprobs,
    demo_preference_data,
    dpo_collate_fn,
    load_preference_data,
    preference_accuracy,
    stack_pairs,
)
from gpt.finetune.instruct import (
    InstructionDataset,
    add_demo_flaws,
    custom_collate_fn,
    demo_instruction_data,
    demo_tokenizer,
    exact_match_accuracy,
    generate_responses,
    split_instruction_data,
)
from gpt.model import GPTConfig, GPTModel
from gpt.train import Trainer

SETTINGS = {   # normal run / --fast (one task, a tiny model)
    "entries": (1000, 200),
    "tasks": (None, ["count_letters", "count_words"]),
    "model": (dict(emb_dim=128, n_heads=4, n_layers=4), dict(emb_dim=32, n_heads=2, n_layers=2)),
    "sft_epochs": (10, 4),
    "sft_lr": (1e-3, 5e-3),
    "dpo_epochs": (1, 2),
    "dpo_lr": (1e-4, 1e-4),
    "beta": (0.5, 0.5),
}


def main() -> int:
    args = parse_args("Chapter 7's bonus: preference tuning with DPO on checkable questions.")
    pick = {k: v[1] if args.fast else v[0] for k, v in SETTINGS.items()}
    np.set_printoptions(linewidth=120)

    section("1 Preference data")
    path = reference_file(args, "instruction-data-with-preference.json")
    if path is not None:
        book = load_preference_data(path)
        print(f"The book's preference data: {len(book)} entries; the first:\n", book[0])
    else:
        print("(The book's instruction-data-with-preference.json is not here: 'python -m gpt download "
              "preference-data' fetches it.)")
    entries = demo_instruction_data(pick["entries"], seed=123, tasks=pick["tasks"])
    train, test, val = split_instruction_data(entries)
    pairs = {"train": demo_preference_data(train, 123, flaws=True), "test": demo_preference_data(test, 124, flaws=True),
             "val": demo_preference_data(val, 125, flaws=True)}
    noisy = add_demo_flaws(train, 0.7, seed=123)          # what the instruction model learns from (section 3)
    print(f"Noisy labels for the instruction model: {sum('flaw' in e for e in noisy)} of {len(noisy)} training "
          "answers carry a systematic flaw, e.g.", next(e for e in noisy if "flaw" in e))
    print(f"\nThe demo pairs: {len(train)} training, {len(test)} held-out, {len(val)} validation; for example:")
    for p in pairs["train"][:5]:
        print(f"  {p['instruction']!r:<40} input {p['input']!r:<20} chosen {p['chosen']!r:<8} "
              f"rejected {p['rejected']!r:<8} ({p['kind']})")

    section("2 Batches and masks")
    tokenizer = demo_tokenizer()
    dataset = PreferenceDataset(pairs["train"], tokenizer)
    item = dataset[0]
    for boundary in ("answer", "book"):
        batch = dpo_collate_fn([item], pad_token_id=tokenizer.eot_token, boundary=boundary)
        ids, mask = batch["chosen"][0], batch["chosen_mask"][0]
        print(f"boundary={boundary!r}: the tokens that count in the chosen sequence:",
              [tokenizer.decode([int(i)]) for i in ids[mask]])
    print("(The book hides the prompt and two more tokens, the two newlines, so '### Response:' counts as "
          "answer; here the answer\n starts after the header, and its <|endoftext|> counts: see dpo_collate_fn.)")
    batch = dpo_collate_fn([dataset[i] for i in range(3)], pad_token_id=tokenizer.eot_token)
    print("chosen:", batch["chosen"].shape, "rejected:", batch["rejected"].shape, "(one common length)")
    print("chosen_mask, row 0, last 12 positions:", batch["chosen_mask"][0, -12:].astype(int))

    section("3 The instruction-tuned model to start from (chapter 7's demo)")
    mg.manual_seed(123)
    model = GPTModel(GPTConfig(vocab_size=tokenizer.n_vocab, context_length=128, drop_rate=0.0, **pick["model"]))
    collate = functools.partial(custom_collate_fn, pad_token_id=tokenizer.eot_token, allowed_max_length=128,
                                mask_prompt=True)
    loader = DataLoader(InstructionDataset(noisy, tokenizer, return_prompt_length=True), batch_size=8,
                        shuffle=True, seed=123, collate_fn=collate)
    total, lr = pick["sft_epochs"] * len(loader), pick["sft_lr"]
    with Stopwatch() as clock:
        Trainer(model, AdamW(model.parameters(), lr=lr, weight_decay=0.1), loader, total_steps=total, peak_lr=lr,
                warmup_steps=total // 10, initial_lr=lr / 100, min_lr=lr / 10, eval_freq=total).run()
    print(f"Instruction fine-tuning: {total} steps in {clock.seconds:.0f} s")
    reference = GPTModel(model.cfg)
    reference.load_state_dict(model.state_dict())       # the frozen copy DPO measures against

    section("4 Log-probabilities, the loss and the rewards on one batch")
    stacked = PreferenceBatch(*stack_pairs(batch))
    logps = compute_logprobs(model(stacked.token_ids), stacked.token_ids, stacked.mask).data
    print("summed log-probabilities, chosen:", logps[:3].round(3), "rejected:", logps[3:].round(3))
    average = compute_logprobs(model(stacked.token_ids), stacked.token_ids, stacked.mask, average=True).data
    print("the book's per-token averages, chosen:", average[:3].round(3))
    loss, chosen, rejected = compute_dpo_loss_batch(batch, model, reference, beta=pick["beta"])
    print(f"policy = reference: loss {loss.item():.4f} = ln 2 = {np.log(2):.4f}, rewards {chosen} and {rejected}")

    section("5 DPO training")
    def stack(items):
        return stack_pairs(dpo_collate_fn(items, pad_token_id=tokenizer.eot_token, allowed_max_length=128))

    train_loader = DataLoader(dataset, batch_size=8, shuffle=True, drop_last=True, seed=123, collate_fn=stack)
    val_loader = DataLoader(PreferenceDataset(pairs["val"], tokenizer), batch_size=8, drop_last=False,
                            collate_fn=stack)
    test_loader = DataLoader(PreferenceDataset(pairs["test"], tokenizer), batch_size=16, drop_last=False,
                             collate_fn=stack)
    ranked_before = preference_accuracy(model, test_loader)
    exact_before = exact_match_accuracy(test, generate_responses(model, tokenizer, test, max_new_tokens=16))
    total, lr = pick["dpo_epochs"] * len(train_loader), pick["dpo_lr"]
    trainer = DPOTrainer(model, reference, AdamW(model.parameters(), lr=lr, weight_decay=0.01), train_loader,
                         val_loader, beta=pick["beta"], total_steps=total, peak_lr=lr, warmup_steps=total // 10,
                         initial_lr=lr / 100, min_lr=lr / 10, grad_clip=1.0, eval_freq=max(1, total // 4),
                         eval_iter=5)

    def report(t, train_loss, val_loss):
        m = t.history[-1]["val"]
        print(f"step {t.state.step:4d}: train loss {train_loss:.3f}, val loss {val_loss:.3f}, margin "
              f"{m['margin']:.3f}, reward accuracy {m['accuracy']:.0%}, rewards {m['chosen_reward']:.3f} / "
              f"{m['rejected_reward']:.3f}")

    with Stopwatch() as clock:
        trainer.run(on_eval=report)
    print(f"DPO: {total} steps in {clock.seconds:.0f} s")

    section("6 Before and after, on the held-out pairs")
    ranked_after = preference_accuracy(model, test_loader)
    exact_after = exact_match_accuracy(test, generate_responses(model, tokenizer, test, max_new_tokens=16))
    print(f"Preference accuracy (log p(chosen) > log p(rejected)): {ranked_before:.1%} -> {ranked_after:.1%}")
    print(f"Exact-match accuracy: {exact_before:.1%} -> {exact_after:.1%}")
    print("\nThe same from the command line, with checkpoints, Ctrl-C and --resume:\n"
          "  python -m gpt finetune-dpo --demo --out runs/dpo\n"
          "  python -m gpt chat --checkpoint runs/dpo --prompt 'Convert the word to upper case.' --input lion\n"
          "and on the book's data (python -m gpt download preference-data) from a finetune-instruct checkpoint:\n"
          "  python -m gpt finetune-dpo --data instruction-data-with-preference.json --checkpoint runs/instruct")
    return 0


if __name__ == "__main__":
    sys.exit(main())
