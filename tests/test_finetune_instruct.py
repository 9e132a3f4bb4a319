"""Tests for chapter 7 (gpt.finetune.instruct) and ``python -m gpt finetune-instruct`` / ``chat``:
reading and checking instruction data, the book's prompt format and split, the collate rules (a
hypothesis property against a transcription of the book's function), cross-entropy ignoring -100,
response extraction and generation, LoRA checkpoints, the demo data and its tokenizer, the demo
fine-tune improving exact-match accuracy, and the CLI in a fast mode (resume, chat, bad input)."""
import functools
import json
import os
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad.optim import AdamW

from gpt.checkpoint import load_checkpoint
from gpt.data import DataLoader
from gpt.finetune.instruct import (
    DEMO_TASKS,
    DEMO_WORDS,
    PREAMBLE,
    InstructionDataset,
    add_lora,
    custom_collate_fn,
    demo_instruction_data,
    demo_tokenizer,
    exact_match,
    exact_match_accuracy,
    extract_response,
    format_input,
    format_response,
    generate_response,
    generate_responses,
    load_instruct_checkpoint,
    load_instruction_data,
    responses_path,
    save_instruct_checkpoint,
    split_instruction_data,
    write_responses,
)
from gpt.finetune.lora import LinearWithLoRA
from gpt.model import GPTConfig, GPTModel
from gpt.train import Trainer, calc_loss_batch
from tests.cli_helpers import alpaca_chat_answer, check_one_line_error, interrupt_at, run_cli, run_subprocess, weights

BOOK_PREAMBLE = ("Below is an instruction that describes a task. Write a response that appropriately "
                 "completes the request.")
ACCURACY = re.compile(r"exact-match accuracy (before|after) fine-tuning: +(\d+\.\d)%")
# a few seconds: a 2-layer GPT of width 64 (the "tiny" preset) on 60 generated entries
FAST = ["--demo", "--demo-size", "60", "--config", "tiny", "--batch-size", "8", "--eval-batches", "2"]


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------






def tiny_model(vocab_size, seed=0, context_length=96, **kw):
    mg.manual_seed(seed)
    cfg = dict(vocab_size=vocab_size, context_length=context_length, emb_dim=32, n_heads=2, n_layers=1, drop_rate=0.0)
    return GPTModel(GPTConfig(**{**cfg, **kw}))


def entries_file(path, entries):
    path.write_text(json.dumps(entries, indent=1), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------------
# Data: reading and checking, the prompt format, the split
# --------------------------------------------------------------------------------------------------


def test_load_instruction_data_keeps_entries_and_fills_a_missing_input(tmp_path):
    entries = [{"instruction": "Say hi.", "input": "", "output": "Hi."},
               {"instruction": "Upper-case it.", "output": "CAT", "extra": 1},
               {"instruction": "Add.", "input": "1 + 2", "output": "3"}]
    loaded = load_instruction_data(entries_file(tmp_path / "d.json", entries))
    assert loaded[0] == entries[0] and loaded[2] == entries[2]
    assert loaded[1] == {"instruction": "Upper-case it.", "input": "", "output": "CAT", "extra": 1}


@pytest.mark.parametrize("content, expected", [
    ('{"instruction": "x", "input": "", "output": "y"}', ["JSON list", "dict"]),
    ('[{"instruction": "a", "input": "", "output": "b"}, "text"]', ["entry 1", "str"]),
    ('[{"instruction": "a", "input": "", "output": "b"}, {"instruction": "a", "input": ""}]', ["entry 1", "'output'"]),
    ('[{"input": "", "output": "b"}]', ["entry 0", "'instruction'"]),
    ('[{"instruction": "a", "input": "", "output": "b"}]', None),
    ('[{"instruction": "a", "input": 3, "output": "b"}]', ["entry 0", "'input'", "int"]),
    ('[{"instruction": "a", "input": "", "output": null}]', ["entry 0", "'output'", "NoneType"]),
    ('[{"instruction": "  ", "input": "", "output": "b"}]', ["entry 0", "instruction is empty"]),
    ('[{"instruction": "a", "input": "", "output": "b"},]', ["not valid JSON", "line 1"]),
    ('', ["the file is empty"]),
    (' \n\t\n', ["the file is empty", "whitespace"]),
])
def test_malformed_data_names_the_entry(tmp_path, content, expected):
    path = tmp_path / "d.json"
    path.write_text(content, encoding="utf-8")
    if expected is None:
        assert len(load_instruction_data(path)) == 1
        return
    with pytest.raises(ValueError) as err:
        load_instruction_data(path)
    message = str(err.value)
    assert str(path) in message and "\n" not in message
    for word in expected:
        assert word in message, (word, message)


def test_data_that_is_not_utf8_or_missing(tmp_path):
    path = tmp_path / "d.json"
    path.write_bytes(b'[{"instruction": "caf\xe9", "input": "", "output": "x"}]')
    with pytest.raises(ValueError, match="UTF-8"):
        load_instruction_data(path)
    with pytest.raises(FileNotFoundError):
        load_instruction_data(tmp_path / "nope.json")


def test_a_device_that_reads_empty_or_a_folder_is_not_instruction_data(tmp_path):
    with pytest.raises(ValueError, match="the file is empty"):
        load_instruction_data(os.devnull)            # /dev/null is no regular file, and reads empty
    with pytest.raises(ValueError, match="is a folder"):
        load_instruction_data(tmp_path)


def test_format_input_with_and_without_input_is_the_books_prompt():
    assert PREAMBLE == BOOK_PREAMBLE
    entry = {"instruction": "Identify the correct spelling of the following word.", "input": "Ocassion",
             "output": "The correct spelling is 'Occasion.'"}
    assert format_input(entry) == (BOOK_PREAMBLE + "\n\n### Instruction:\nIdentify the correct spelling of the "
                                   "following word.\n\n### Input:\nOcassion")
    assert format_response(entry) == "\n\n### Response:\nThe correct spelling is 'Occasion.'"
    no_input = {"instruction": "What is an antonym of 'complicated'?", "input": "", "output": "simple"}
    assert format_input(no_input) == BOOK_PREAMBLE + "\n\n### Instruction:\nWhat is an antonym of 'complicated'?"
    assert format_input({"instruction": "Go.", "output": "x"}) == BOOK_PREAMBLE + "\n\n### Instruction:\nGo."


@given(st.integers(0, 3000))
def test_split_is_the_books_in_file_order(n):
    data = list(range(n))
    train, test, val = split_instruction_data(data)
    assert len(train) == int(n * 0.85) and len(test) == int(n * 0.1)
    assert len(val) == n - len(train) - len(test)
    assert train + test + val == data                      # file order, nothing lost or repeated


def test_split_rejects_bad_fractions():
    with pytest.raises(ValueError, match="at most 1"):
        split_instruction_data([1, 2], 0.9, 0.2)
    with pytest.raises(ValueError, match="test_frac"):
        split_instruction_data([1, 2], 0.5, -0.1)


def test_the_books_data_file(reference_data):
    data = load_instruction_data(reference_data / "instruction-data.json")
    assert len(data) == 1100
    train, test, val = split_instruction_data(data)
    assert (len(train), len(test), len(val)) == (935, 110, 55)
    assert format_input(data[50]).endswith("### Instruction:\nIdentify the correct spelling of the following "
                                           "word.\n\n### Input:\nOcassion")
    assert format_input(data[999]).endswith("### Instruction:\nWhat is an antonym of 'complicated'?")
    assert format_response(data[999]) == "\n\n### Response:\nAn antonym of 'complicated' is 'simple'."


def test_instruction_dataset_with_gpt2s_tokenizer(reference_data):
    from gpt.tokenizer import BPETokenizer

    tokenizer = BPETokenizer.from_gpt2_files(reference_data / "gpt2/encoder.json", reference_data / "gpt2/vocab.bpe")
    data = load_instruction_data(reference_data / "instruction-data.json")[:200]
    dataset = InstructionDataset(data, tokenizer)
    assert len(dataset) == 200
    for i in (0, 50, 199):
        assert dataset[i] == tokenizer.encode(format_input(data[i]) + format_response(data[i]))
    for ids, n, entry in zip(dataset.encoded_texts, dataset.prompt_lengths, data):
        assert ids[:n] == tokenizer.encode(format_input(entry))     # the prompt is a prefix of the text
    assert tokenizer.encode("<|endoftext|>", allowed_special={"<|endoftext|>"}) == [50256]


def test_instruction_dataset_encodes_endoftext_in_the_data_as_text():
    tokenizer = demo_tokenizer()
    entry = {"instruction": "Repeat <|endoftext|>", "input": "", "output": "<|endoftext|>"}
    dataset = InstructionDataset([entry], tokenizer, return_prompt_length=True)
    ids, prompt_length = dataset[0]
    assert tokenizer.eot_token not in ids
    assert tokenizer.decode(ids) == format_input(entry) + format_response(entry)
    assert tokenizer.decode(ids[:prompt_length]) == format_input(entry)


# --------------------------------------------------------------------------------------------------
# custom_collate_fn
# --------------------------------------------------------------------------------------------------


def test_collate_the_books_example():
    batch = ([0, 1, 2, 3, 4], [5, 6], [7, 8, 9])
    inputs, targets = custom_collate_fn(batch)
    assert inputs.dtype == targets.dtype == np.int64
    assert inputs.tolist() == [[0, 1, 2, 3, 4], [5, 6, 50256, 50256, 50256], [7, 8, 9, 50256, 50256]]
    assert targets.tolist() == [[1, 2, 3, 4, 50256], [6, 50256, -100, -100, -100], [8, 9, 50256, -100, -100]]
    inputs, targets = custom_collate_fn(batch, allowed_max_length=3)
    assert inputs.tolist() == [[0, 1, 2], [5, 6, 50256], [7, 8, 9]]
    assert targets.tolist() == [[1, 2, 3], [6, 50256, -100], [8, 9, 50256]]


def books_collate(batch, pad_token_id, ignore_index, allowed_max_length, prompt_lengths=None):
    """The book's custom_collate_fn (section 7.3), transcribed with lists, plus the exercise 7.2
    masking of the prompt (``targets[:prompt_length - 1] = ignore_index``)."""
    batch_max_length = max(len(item) + 1 for item in batch)
    inputs_lst, targets_lst = [], []
    for k, item in enumerate(batch):
        new_item = list(item) + [pad_token_id]
        padded = new_item + [pad_token_id] * (batch_max_length - len(new_item))
        inputs, targets = padded[:-1], padded[1:]
        indices = [i for i, t in enumerate(targets) if t == pad_token_id]
        for i in indices[1:]:
            targets[i] = ignore_index
        if prompt_lengths is not None:
            for i in range(prompt_lengths[k] - 1):
                targets[i] = ignore_index
        if allowed_max_length is not None:
            inputs, targets = inputs[:allowed_max_length], targets[:allowed_max_length]
        inputs_lst.append(inputs)
        targets_lst.append(targets)
    return inputs_lst, targets_lst


@st.composite
def batches(draw):
    pad = draw(st.sampled_from([50256, 0, 7]))
    ignore = draw(st.sampled_from([-100, -1]))
    items = draw(st.lists(st.lists(st.integers(0, 50255).filter(lambda t: t != pad), min_size=1, max_size=20),
                          min_size=1, max_size=6))
    prompt_lengths = [draw(st.integers(0, len(item))) for item in items]
    allowed = draw(st.none() | st.integers(1, 25))
    mask = draw(st.booleans())
    return items, prompt_lengths, pad, ignore, allowed, mask


@given(batches())
def test_collate_rules(case):
    items, prompt_lengths, pad, ignore, allowed, mask = case
    batch = list(zip(items, prompt_lengths)) if mask or len(items) % 2 else items   # pairs or plain id lists
    inputs, targets = custom_collate_fn(batch, pad_token_id=pad, ignore_index=ignore, allowed_max_length=allowed,
                                        mask_prompt=mask)
    longest = max(map(len, items))
    width = longest if allowed is None else min(longest, allowed)
    assert inputs.shape == targets.shape == (len(items), width)
    assert inputs.dtype == targets.dtype == np.int64
    for row, (ids, p) in enumerate(zip(items, prompt_lengths)):
        n = len(ids)
        full_inputs = ids + [pad] * (longest - n)
        assert inputs[row].tolist() == full_inputs[:width]
        expected = ids[1:] + [pad] + [ignore] * (longest - n)          # one end-of-text target, then ignored
        if mask:
            expected[:max(p - 1, 0)] = [ignore] * max(p - 1, 0)
        assert targets[row].tolist() == expected[:width]
        if n - 1 < width:                                               # the end-of-text target survived the cut
            assert targets[row].tolist().count(pad) == 1 and targets[row, n - 1] == pad
            assert (targets[row, n:] == ignore).all()
        if mask:                                                        # the prompt is hidden, the answer kept
            start = max(p - 1, 0)
            assert (targets[row, :start] == ignore).all()
            assert targets[row, start:n - 1].tolist() == ids[start + 1:n][:max(0, width - start)]
    book_inputs, book_targets = books_collate(items, pad, ignore, allowed, prompt_lengths if mask else None)
    assert inputs.tolist() == book_inputs and targets.tolist() == book_targets


def test_collate_rejects_bad_batches():
    with pytest.raises(ValueError, match="empty batch"):
        custom_collate_fn([])
    with pytest.raises(ValueError, match="item 1 has no tokens"):
        custom_collate_fn([[1, 2], []])
    with pytest.raises(ValueError, match="return_prompt_length=True"):
        custom_collate_fn([[1, 2]], mask_prompt=True)
    with pytest.raises(ValueError, match="prompt length 5"):
        custom_collate_fn([([1, 2], 5)], mask_prompt=True)
    with pytest.raises(ValueError, match="allowed_max_length"):
        custom_collate_fn([[1, 2]], allowed_max_length=0)


def test_collate_with_the_data_loader_and_dataset():
    tokenizer = demo_tokenizer()
    data = demo_instruction_data(20, seed=5)
    dataset = InstructionDataset(data, tokenizer, return_prompt_length=True)
    collate = functools.partial(custom_collate_fn, pad_token_id=tokenizer.eot_token, mask_prompt=True)
    loader = DataLoader(dataset, batch_size=4, shuffle=True, seed=1, collate_fn=collate)
    responses = {format_response(e) for e in data}
    seen = 0
    for inputs, targets in loader:
        assert inputs.shape == targets.shape and inputs.shape[0] == 4
        # with the prompt masked, the targets left are a response and its end
        for row in targets:
            kept = [int(t) for t in row if t != -100]
            assert kept[-1] == tokenizer.eot_token and tokenizer.decode(kept[:-1]) in responses
            seen += 1
    assert seen == 20


# --------------------------------------------------------------------------------------------------
# The loss ignores -100
# --------------------------------------------------------------------------------------------------


def test_calc_loss_batch_counts_only_the_targets_that_are_not_ignored():
    tokenizer = demo_tokenizer()
    model = tiny_model(tokenizer.n_vocab)
    dataset = InstructionDataset(demo_instruction_data(6, seed=3), tokenizer, return_prompt_length=True)
    inputs, targets = custom_collate_fn([dataset[i] for i in range(6)], pad_token_id=tokenizer.eot_token,
                                        mask_prompt=True)
    loss = calc_loss_batch(inputs, targets, model).item()
    logits = model(inputs).data.astype(np.float64)                     # (b, T, vocab)
    keep = targets != -100
    z = logits[keep]
    log_probs = z - np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)) - z.max(-1, keepdims=True)
    np.testing.assert_allclose(loss, -log_probs[np.arange(len(z)), targets[keep]].mean(), rtol=1e-5)
    assert keep.sum() < keep.size / 3                                  # most targets (prompt, padding) ignored


# --------------------------------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("generated, prompt, expected", [
    ("PROMPT\n\n### Response:\nThe answer.", "PROMPT", "The answer."),
    ("\n\n### Response:\n  TAC \n", None, "TAC"),
    ("PROMPT The answer.\n", "PROMPT", "The answer."),
    ("Other text. ### Response: kept", "PROMPT", "Other text. ### Response: kept"),
    ("### Response:", None, ""),
])
def test_extract_response(generated, prompt, expected):
    assert extract_response(generated, prompt) == expected


class ScriptedModel:
    """A stand-in GPT that answers any prompt of ``prompt_length`` tokens with ``script``, one token
    per step (the logits favour ``script[k]`` at the k-th new position)."""

    training = False

    def __init__(self, script, prompt_length, vocab_size, context_length=1000):
        self.script, self.prompt_length, self.vocab_size = script, prompt_length, vocab_size
        self.cfg = GPTConfig(vocab_size=vocab_size, context_length=context_length, emb_dim=2, n_heads=1, n_layers=1)

    def eval(self):
        self.training = False

    def train(self, mode=True):
        self.training = mode

    def __call__(self, idx, last_only=False):
        k = idx.shape[1] - self.prompt_length
        logits = np.zeros((idx.shape[0], 1, self.vocab_size), dtype=np.float32)
        logits[:, 0, self.script[k]] = 5.0
        return mg.Tensor(logits)


@pytest.mark.parametrize("answer_text, expected", [
    ("\n\n### Response:\nTAC", "TAC"),        # the header the model writes itself is removed
    (" tac ", "tac"),                         # no header: the answer as it is, stripped
])
def test_generate_response_stops_at_endoftext_and_keeps_only_the_answer(answer_text, expected):
    tokenizer = demo_tokenizer()
    entry = {"instruction": "Write the word backwards.", "input": "cat", "output": "tac"}
    prompt_length = len(tokenizer.encode(format_input(entry)))
    script = tokenizer.encode(answer_text) + [tokenizer.eot_token] + tokenizer.encode(" more text after the end")
    model = ScriptedModel(script, prompt_length, tokenizer.n_vocab)
    assert generate_response(model, tokenizer, entry, max_new_tokens=50) == expected
    # without an end-of-text token the answer runs to max_new_tokens
    n = len(tokenizer.encode(answer_text))
    assert generate_response(model, tokenizer, entry, max_new_tokens=n + 3, eos_id=-1).startswith(expected)


def test_generate_responses_in_batches_equals_one_at_a_time():
    tokenizer = demo_tokenizer()
    model = tiny_model(tokenizer.n_vocab, seed=4)
    entries = demo_instruction_data(12, seed=9)
    lengths = {len(tokenizer.encode(format_input(e))) for e in entries}
    assert 1 < len(lengths) < len(entries)                # some prompts share a length, some do not
    calls = []
    batched = generate_responses(model, tokenizer, entries, max_new_tokens=6, batch_size=3,
                                 on_progress=lambda done, total: calls.append((done, total)))
    alone = [generate_response(model, tokenizer, e, max_new_tokens=6) for e in entries]
    assert batched == alone
    assert calls[-1] == (12, 12) and [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert model.training                                  # generation restored the mode


def test_write_responses_is_atomic_json_next_to_the_data(tmp_path):
    data = tmp_path / "instruction-data.json"
    assert responses_path(data) == tmp_path / "instruction-data-with-response.json"
    entries = [{"instruction": "a", "input": "", "output": "b"}, {"instruction": "c", "input": "d", "output": "e"}]
    path = write_responses(entries, ["B", "é"], responses_path(data))
    assert json.loads(path.read_text(encoding="utf-8")) == [dict(entries[0], model_response="B"),
                                                            dict(entries[1], model_response="é")]
    write_responses(entries[:1], ["again"], path)          # replaces the old file
    assert json.loads(path.read_text(encoding="utf-8"))[0]["model_response"] == "again"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]   # no temporary files left
    assert entries[0] == {"instruction": "a", "input": "", "output": "b"}   # the inputs are not changed
    with pytest.raises(ValueError, match="2 entries but 1 responses"):
        write_responses(entries, ["x"], path)


# --------------------------------------------------------------------------------------------------
# LoRA checkpoints
# --------------------------------------------------------------------------------------------------


def test_lora_checkpoint_round_trip_and_merge(tmp_path):
    tokenizer = demo_tokenizer()
    model = add_lora(tiny_model(tokenizer.n_vocab, seed=2), rank=2, alpha=4)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.endswith(("lora.A", "lora.B")) for n in trainable)
    rng = np.random.default_rng(0)
    for m in model.modules():
        if isinstance(m, LinearWithLoRA):
            m.lora.B.data[...] = rng.normal(0, 0.5, m.lora.B.shape)       # a learned-looking update
    ids = np.array([tokenizer.encode(format_input(demo_instruction_data(1)[0]))])
    model.eval()
    expected = model(ids).data
    save_instruct_checkpoint(tmp_path, model, tokenizer=tokenizer)
    ck = load_instruct_checkpoint(tmp_path)
    assert ck.info["task"] == "instruction" and ck.info["instruct"]["lora"] == {"rank": 2, "alpha": 4}
    assert any(isinstance(m, LinearWithLoRA) for m in ck.model.modules())
    assert [n for n, p in ck.model.named_parameters() if p.requires_grad] == trainable
    ck.model.eval()
    np.testing.assert_array_equal(ck.model(ids).data, expected)
    merged = load_instruct_checkpoint(tmp_path, merge=True).model
    assert not any(isinstance(m, LinearWithLoRA) for m in merged.modules())
    merged.eval()
    np.testing.assert_allclose(merged(ids).data, expected, rtol=1e-4, atol=1e-4)
    assert np.abs(expected - tiny_model(tokenizer.n_vocab, seed=2).eval()(ids).data).max() > 1e-3  # LoRA mattered


# --------------------------------------------------------------------------------------------------
# The demo data, its tokenizer and exact match
# --------------------------------------------------------------------------------------------------


def test_demo_data_is_deterministic_distinct_and_correct():
    data = demo_instruction_data(500, seed=1)
    assert data == demo_instruction_data(500, seed=1) and data != demo_instruction_data(500, seed=2)
    assert len({(e["instruction"], e["input"]) for e in data}) == 500
    counts = {t: sum(e["task"] == t for e in data) for t in DEMO_TASKS}
    assert counts == {t: 100 for t in DEMO_TASKS}
    for e in data:
        word, task = e["input"], e["task"]
        if task == "upper":
            assert word in DEMO_WORDS and e["output"] == word.upper()
        elif task == "reverse":
            assert word in DEMO_WORDS and e["output"] == word[::-1]
        elif task == "count_letters":
            assert word in DEMO_WORDS and e["output"] == str(len(word))
        elif task == "count_words":
            assert e["output"] == str(len(word.split())) and set(word.split()) <= set(DEMO_WORDS)
        else:
            a, b = map(int, re.findall(r"\d+", e["instruction"] + " " + e["input"]))
            assert e["output"] == str(a + b)
    assert {bool(e["input"]) for e in data if e["task"] == "add"} == {True, False}   # both prompt forms
    # tasks take turns: any stretch of the file mixes them
    assert len({e["task"] for e in data[:20]}) == len(DEMO_TASKS)


def test_demo_data_errors():
    with pytest.raises(ValueError, match="unknown demo task"):
        demo_instruction_data(10, tasks=["juggle"])
    with pytest.raises(ValueError, match="ask for fewer"):
        demo_instruction_data(len(DEMO_WORDS) + 1, tasks=["upper"])
    with pytest.raises(ValueError, match="positive"):
        demo_instruction_data(0)


def test_demo_tokenizer_spells_the_task_words_and_keeps_the_template_short(tmp_path):
    tokenizer = demo_tokenizer()
    assert tokenizer.n_vocab < 512 and tokenizer.eot_token == tokenizer.n_vocab - 1
    entry = {"instruction": "Write the word backwards.", "input": "horse", "output": "esroh"}
    text = format_input(entry) + format_response(entry)
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == text
    pieces = [tokenizer.decode([i]) for i in ids]
    assert pieces[-5:] == list("esroh")                       # the answer, letter by letter
    i = pieces.index(" Input")
    assert pieces[i:i + 8] == [" Input", ":", "\n", *"horse"]  # the word asked about, too
    for word in (" instruction", " appropriately", " Response", "###", " backwards"):
        assert word in pieces
    assert len(ids) < len(text) / 3                          # while the template words are one token each
    tokenizer.save(tmp_path / "t.txt")                    # survives a checkpoint
    assert type(tokenizer).load(tmp_path / "t.txt").encode(text) == ids


def test_exact_match_accuracy():
    entries = [{"output": "CAT", "task": "upper"}, {"output": "4", "task": "add"}, {"output": "tac", "task": "add"}]
    assert exact_match(" CAT\n", "CAT") and not exact_match("cat", "CAT")
    assert exact_match_accuracy(entries, ["CAT", "5", "tac"]) == pytest.approx(2 / 3)
    overall, per_task = exact_match_accuracy([dict(e, model_response=r) for e, r in zip(entries, ["x", "4", "tac"])],
                                             by_task=True)
    assert overall == pytest.approx(2 / 3) and per_task == {"upper": 0.0, "add": 1.0}
    assert np.isnan(exact_match_accuracy([], []))


def test_the_demo_fine_tune_improves_exact_match_accuracy():
    """A 2-layer GPT of width 32 from random initialisation learns to count the letters of words it
    has never been asked about: exact-match accuracy goes from 0 to well above always giving the most
    common answer (a few seconds)."""
    data = demo_instruction_data(200, seed=123, tasks=["count_letters"])
    train, test, val = split_instruction_data(data)
    tokenizer = demo_tokenizer()
    model = tiny_model(tokenizer.n_vocab, seed=1, n_layers=2)
    before = exact_match_accuracy(test, generate_responses(model, tokenizer, test, max_new_tokens=8))
    collate = functools.partial(custom_collate_fn, pad_token_id=tokenizer.eot_token, mask_prompt=True)
    loader = DataLoader(InstructionDataset(train, tokenizer, return_prompt_length=True), batch_size=16,
                        shuffle=True, seed=1, collate_fn=collate)
    total, lr = 12 * len(loader), 1e-2
    trainer = Trainer(model, AdamW(model.parameters(), lr=lr, weight_decay=0.0), loader, total_steps=total,
                      peak_lr=lr, warmup_steps=total // 10, initial_lr=lr / 100, min_lr=lr / 10, eval_freq=total)
    trainer.run()
    answers = generate_responses(model, tokenizer, test, max_new_tokens=8)
    after = exact_match_accuracy(test, answers)
    most_common = max(sum(e["output"] == o for e in test) for o in {e["output"] for e in test}) / len(test)
    assert before == 0.0
    assert after >= 0.6 and after > most_common + 0.15, (after, most_common, answers)


# --------------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One fast --demo run from scratch, shared by the tests that use its checkpoint."""
    out = tmp_path_factory.mktemp("demo") / "ck"
    code, stdout, stderr = run_cli("finetune-instruct", *FAST, "--epochs", 2, "--eval-every", 6, "--out", out)
    assert code == 0, stderr
    return out, stdout, stderr


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    """40 Alpaca-style entries in a JSON file."""
    entries = [{k: e[k] for k in ("instruction", "input", "output")} for e in demo_instruction_data(40, seed=77)]
    return entries_file(tmp_path_factory.mktemp("data") / "my-data.json", entries)


def test_demo_run_reports_accuracy_and_writes_checkpoint_and_answers(demo_run):
    out, stdout, stderr = demo_run
    assert "Traceback" not in stderr
    assert "51 training, 6 test, 3 validation entries" in stdout and "(random initialisation)" in stdout
    found = ACCURACY.findall(stdout)
    assert [kind for kind, _ in found] == ["before", "before", "after"]    # at the start, then both at the end
    assert found[0] == found[1]
    assert re.search(r"step \d+ \(epoch 1\): train loss \d+\.\d+, val loss \d+\.\d+", stdout)
    assert re.search(r"^  '.*' -> '.*'$", stdout, re.M)                  # a sample answer at each evaluation
    ck = load_checkpoint(out, load_training_state=True)
    assert ck.info["task"] == "instruction" and ck.trainer_state["train_state"]["step"] == 12
    assert ck.info["settings"]["mask_prompt"] is True          # the demo from scratch learns only the answers
    answers = json.loads((out / "demo-test-with-response.json").read_text(encoding="utf-8"))
    test = split_instruction_data(demo_instruction_data(60))[1]
    assert [{k: v for k, v in a.items() if k != "model_response"} for a in answers] == test
    accuracy = exact_match_accuracy(answers)
    assert stdout.strip().splitlines()[-1].startswith(f"exact-match accuracy after fine-tuning:  {accuracy:.1%}")
    log = json.loads((out / "log.json").read_text())
    assert log["eval_steps"] == [6, 12] and len(log["train_losses"]) == 2


def test_chat_prints_only_the_answer(demo_run):
    out, _, _ = demo_run
    ck = load_instruct_checkpoint(out)
    entry = {"instruction": "Convert the word to upper case.", "input": "lion"}
    expected = alpaca_chat_answer(ck.model, ck.tokenizer, entry, max_new_tokens=12)
    code, stdout, stderr = run_cli("chat", "--checkpoint", out, "--prompt", entry["instruction"], "--input", "lion",
                                   "--max-new-tokens", 12)
    assert code == 0 and stderr == ""
    assert stdout == expected + "\n"
    assert "###" not in stdout and "Below is" not in stdout


def test_chat_reads_instructions_from_stdin_until_eof(demo_run):
    out, _, _ = demo_run
    ck = load_instruct_checkpoint(out)
    questions = ["What is 2 plus 3?", "What is 7 plus 1?"]
    code, stdout, stderr = run_cli("chat", "--checkpoint", out, "--max-new-tokens", 8,
                                   stdin=questions[0] + "\n\n" + questions[1] + "\n")
    assert code == 0, stderr
    answers = [alpaca_chat_answer(ck.model, ck.tokenizer, {"instruction": q}, max_new_tokens=8) for q in questions]
    assert stdout == "".join(a.replace("\\", "\\\\").replace("\n", "\\n") + "\n" for a in answers)  # one line each


def test_finetune_a_checkpoint_on_a_data_file_with_lora_then_chat(demo_run, data_file, tmp_path):
    out, _, _ = demo_run
    data = tmp_path / "data.json"
    data.write_bytes(data_file.read_bytes())
    code, stdout, stderr = run_cli("finetune-instruct", "--data", data, "--checkpoint", out, "--lora-rank", 2,
                                   "--lora-alpha", 4, "--epochs", 1, "--batch-size", 4, "--lr", "1e-3",
                                   "--max-new-tokens", 6, "--eval-every", 4, "--out", tmp_path / "lora")
    assert code == 0, stderr
    answers_file = tmp_path / "data-with-response.json"
    assert stdout.strip().splitlines()[-1] == f"responses: {answers_file}"
    answers = json.loads(answers_file.read_text(encoding="utf-8"))
    assert len(answers) == 4 and all("model_response" in a for a in answers)     # int(0.1 * 40) test entries
    trainable = re.search(r"trainable parameters ([\d,]+) of ([\d,]+)", stdout)
    assert 0 < int(trainable.group(1).replace(",", "")) < int(trainable.group(2).replace(",", "")) / 5
    ck = load_instruct_checkpoint(tmp_path / "lora")
    assert ck.info["instruct"]["lora"] == {"rank": 2, "alpha": 4}
    # the base weights did not move, only the LoRA matrices
    base = weights(out)
    for name, value in weights(tmp_path / "lora").items():
        if name.endswith("linear.weight"):
            np.testing.assert_array_equal(value, base[name.replace(".linear.weight", ".weight")])
    # chat on the LoRA checkpoint answers with the model as trained (its LoRA layers in place)
    first = answers[0]
    code, stdout, _ = run_cli("chat", "--checkpoint", tmp_path / "lora", "--prompt", first["instruction"],
                              "--input", first["input"], "--max-new-tokens", 6)
    lora = load_instruct_checkpoint(tmp_path / "lora")
    assert any(isinstance(m, LinearWithLoRA) for m in lora.model.modules())
    assert code == 0 and stdout == alpaca_chat_answer(lora.model, lora.tokenizer, first, max_new_tokens=6) + "\n"
    # generate and evaluate take the LoRA checkpoint too (merged on loading)
    code, stdout, stderr = run_cli("generate", "--checkpoint", tmp_path / "lora", "--prompt", "Below is",
                                   "--max-new-tokens", 4, "--temperature", 0)
    assert code == 0 and stdout.startswith("Below is"), stderr
    # a new fine-tune starting from it merges the LoRA update into the weights and trains them all
    code, stdout, stderr = run_cli("finetune-instruct", "--data", data, "--checkpoint", tmp_path / "lora",
                                   "--epochs", 1, "--batch-size", 16, "--max-new-tokens", 2, "--eval-every", 2,
                                   "--responses", tmp_path / "again.json", "--out", tmp_path / "full")
    assert code == 0, stderr
    trainable = re.search(r"trainable parameters ([\d,]+) of ([\d,]+)", stdout)
    assert trainable.group(1) == trainable.group(2)
    assert not any(isinstance(m, LinearWithLoRA) for m in load_instruct_checkpoint(tmp_path / "full").model.modules())


def test_finetune_gpt2_weights_with_gpt2s_tokenizer(reference_data, data_file, tmp_path):
    """--gpt2/--vocab: a tiny model in GPT-2's file format with GPT-2's real vocabulary (50,257 tokens,
    <|endoftext|> = 50256, the book's padding id)."""
    from gpt.weights import export_hf

    mg.manual_seed(0)
    export_hf(GPTModel(GPTConfig(vocab_size=50257, context_length=128, emb_dim=16, n_heads=2, n_layers=1,
                                 qkv_bias=True, tie_weights=True)), tmp_path / "gpt2")
    data = tmp_path / "data.json"
    data.write_bytes(data_file.read_bytes())
    weights_file = tmp_path / "gpt2" / "model.safetensors"
    code, stdout, stderr = run_cli("finetune-instruct", "--data", data, "--gpt2", weights_file, "--vocab",
                                   reference_data / "gpt2", "--epochs", 1, "--batch-size", 8, "--lr", "1e-3",
                                   "--max-new-tokens", 3, "--eval-every", 4, "--out", tmp_path / "ck", "--quiet")
    assert code == 0, stderr
    assert stdout == f"responses: {tmp_path / 'data-with-response.json'}\n"
    ck = load_instruct_checkpoint(tmp_path / "ck")
    assert ck.tokenizer.eot_token == 50256 and ck.info["instruct"]["pad_token_id"] == 50256
    assert ck.tokenizer.encode("Hello world") == [15496, 995]                       # GPT-2's own ids
    code, stdout, stderr = run_cli("chat", "--gpt2", weights_file, "--vocab", reference_data / "gpt2",
                                   "--prompt", "Say hi.", "--max-new-tokens", 3)
    assert code == 0 and stderr == "" and stdout.endswith("\n")



def test_ctrl_c_then_resume_ends_with_the_weights_of_an_uninterrupted_run(tmp_path, monkeypatch):
    args = ["finetune-instruct", *FAST, "--epochs", 2, "--eval-every", 4, "--quiet"]
    code, stdout, stderr = run_cli(*args, "--out", tmp_path / "straight")
    assert code == 0, stderr
    lines = stdout.strip().splitlines()                             # --quiet: only the accuracy
    assert [ACCURACY.match(line).group(1) for line in lines] == ["before", "after"]
    with monkeypatch.context() as m:
        interrupt_at(m, 7)                                          # mid-epoch, between two evaluations
        code, stdout, stderr = run_cli(*args, "--out", tmp_path / "stopped")
    assert code == 130 and "Traceback" not in stderr
    assert "interrupted at step 7 of 12" in stderr and "--resume" in stderr
    assert "after" not in stdout
    code, stdout, stderr = run_cli("finetune-instruct", "--resume", tmp_path / "stopped", "--quiet")
    assert code == 0, stderr
    straight, resumed = weights(tmp_path / "straight"), weights(tmp_path / "stopped")
    assert list(straight) == list(resumed)
    for name in straight:
        np.testing.assert_array_equal(straight[name], resumed[name], err_msg=name)
    # the resumed run still reports the accuracy before fine-tuning it measured at its start
    assert [ACCURACY.match(line).group(1) for line in stdout.strip().splitlines()] == ["before", "after"]
    straight_log = json.loads((tmp_path / "straight" / "log.json").read_text())
    resumed_log = json.loads((tmp_path / "stopped" / "log.json").read_text())
    for key in ("train_losses", "val_losses", "track_lrs", "eval_steps", "tokens_seen"):
        assert resumed_log[key] == straight_log[key], key



def test_resume_from_a_step_folder_continues_the_run_that_holds_it(tmp_path, monkeypatch):
    args = ["finetune-instruct", *FAST, "--epochs", 2, "--eval-every", 4, "--quiet"]
    with monkeypatch.context() as m:
        interrupt_at(m, 7)
        code, _, stderr = run_cli(*args, "--out", tmp_path / "run")
    assert code == 130, stderr
    code, _, stderr = run_cli("finetune-instruct", "--resume", tmp_path / "run" / "step-000007", "--quiet")
    assert code == 0, stderr
    assert (tmp_path / "run" / "latest").read_text().strip() == "step-000012"
    assert not list((tmp_path / "run" / "step-000007").glob("step-*"))   # nothing saved inside the step folder

BAD_INPUTS = {
    "no data": (["finetune-instruct"], ["--data", "--demo"]),
    "missing data file": (["finetune-instruct", "--data", "{tmp}/nope.json", "--checkpoint", "{run}"], ["nope.json"]),
    "data is not JSON": (["finetune-instruct", "--data", "{bad_json}", "--checkpoint", "{run}"], ["not valid JSON"]),
    "empty data file": (["finetune-instruct", "--data", "{empty}", "--checkpoint", "{run}"],
                        ["empty.json", "the file is empty"]),
    "data from /dev/null": (["finetune-instruct", "--data", os.devnull, "--checkpoint", "{run}"],
                            [os.devnull, "the file is empty"]),
    "data is a folder": (["finetune-instruct", "--data", "{tmp}", "--checkpoint", "{run}"], ["is a folder"]),
    "malformed entry": (["finetune-instruct", "--data", "{bad_entry}", "--checkpoint", "{run}"],
                        ["entry 1", "'output'"]),
    "data without a model": (["finetune-instruct", "--data", "{data}"], ["--checkpoint", "--gpt2"]),
    "alpha without rank": (["finetune-instruct", *FAST, "--lora-alpha", "8"], ["--lora-rank"]),
    "max length beyond the context": (["finetune-instruct", *FAST, "--max-length", "100", "--out", "{tmp}/o"],
                                      ["--max-length", "64"]),
    "prompts longer than max length": (["finetune-instruct", *FAST, "--max-length", "20", "--mask-prompt",
                                        "--out", "{tmp}/o"], ["--max-length"]),
    "unknown config": (["finetune-instruct", "--demo", "--config", "huge", "--out", "{tmp}/o"], ["huge", "tiny"]),
    "config with a model": (["finetune-instruct", "--demo", "--checkpoint", "{run}", "--config", "tiny"], ["--config"]),
    "demo size zero": (["finetune-instruct", "--demo", "--demo-size", "0"], ["--demo-size"]),
    "flaws above one": (["finetune-instruct", "--demo", "--demo-flaws", "2"], ["--demo-flaws"]),
    "flaws without the demo": (["finetune-instruct", "--data", "{data}", "--checkpoint", "{run}",
                                "--demo-flaws", "0.5", "--out", "{tmp}/o"], ["--demo-flaws", "--demo"]),
    "batch larger than the data": (["finetune-instruct", *FAST, "--batch-size", "64", "--out", "{tmp}/o"],
                                   ["--batch-size"]),
    "zero epochs": (["finetune-instruct", "--demo", "--epochs", "0"], ["--epochs"]),
    "not a checkpoint": (["finetune-instruct", "--demo", "--checkpoint", "{tmp}"], ["not a checkpoint"]),
    "out holds a run": (["finetune-instruct", *FAST, "--out", "{run}"], ["--resume"]),
    "resume a missing dir": (["finetune-instruct", "--resume", "{tmp}/nothing"], ["nothing"]),
    "resume with new data": (["finetune-instruct", "--resume", "{run}", "--data", "{data}"], ["--data"]),
    "resume with another lr": (["finetune-instruct", "--resume", "{run}", "--lr", "0.5"], ["--lr", "cannot change"]),
    "resume a finished run": (["finetune-instruct", "--resume", "{run}"], ["already has 12 steps", "--epochs"]),
    "answers into a missing folder": (["finetune-instruct", "--data", "{data}", "--checkpoint", "{run}",
                                       "--responses", "{tmp}/no/answers.json"], ["no such folder", "--responses"]),
    "a classifier to fine-tune": (["finetune-instruct", "--demo", "--checkpoint", "{classifier}"], ["classifier"]),
    "chat: a classifier": (["chat", "--checkpoint", "{classifier}", "--prompt", "Hi"], ["classifier", "classify"]),
    "chat: no model": (["chat", "--prompt", "Hi"], ["--checkpoint"]),
    "chat: missing checkpoint": (["chat", "--checkpoint", "{tmp}/nope", "--prompt", "Hi"], ["nope"]),
    "chat: empty prompt": (["chat", "--checkpoint", "{run}", "--prompt", " "], ["empty"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_ends_with_a_one_line_error(case, tmp_path, demo_run, data_file):
    argv, expected = BAD_INPUTS[case]
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("[{oops", encoding="utf-8")
    (tmp_path / "empty.json").touch()
    bad_entry = entries_file(tmp_path / "entry.json", [{"instruction": "a", "input": "", "output": "b"},
                                                      {"instruction": "c", "input": ""}])
    names = dict(tmp=tmp_path, run=demo_run[0], data=data_file, bad_json=bad_json, bad_entry=bad_entry,
                 classifier=tmp_path / "classifier", empty=tmp_path / "empty.json")
    if "{classifier}" in argv:
        from gpt.finetune.classify import prepare_for_classification, save_classifier

        tokenizer = demo_tokenizer()
        model = prepare_for_classification(tiny_model(tokenizer.n_vocab), 2)
        save_classifier(tmp_path / "classifier", model, tokenizer=tokenizer, labels=["ham", "spam"], max_length=8,
                        pad_token_id=tokenizer.eot_token)
    code, stdout, stderr = run_cli(*[a.format(**names) for a in argv])
    check_one_line_error(code, stderr, *expected)
    if not stderr.startswith("usage:"):
        assert stderr.count("\n") == 1 and code == 2
    assert "accuracy after" not in stdout
    assert not (tmp_path / "o" / "latest").exists()


def test_bad_input_in_a_subprocess(tmp_path):
    code, _, stderr = run_subprocess("finetune-instruct", "--demo", "--checkpoint", tmp_path / "nope")
    check_one_line_error(code, stderr, "nope")
    assert code == 2 and stderr.count("\n") == 1


@pytest.mark.parametrize("command", ["finetune-instruct", "chat"])
def test_help(command):
    code, stdout, _ = run_cli(command, "--help")
    assert code == 0 and stdout.startswith("usage: python -m gpt " + command)
