"""Tests for chapter 6's classification fine-tuning (gpt/finetune/classify.py), its command line
(``python -m gpt finetune-classify`` / ``classify``) and examples/ch06_classification.py.

Data: TSV and CSV parsing with line-numbered errors, label numbering, balance and random_split
(deterministic, the sizes the book states), padding and truncation. Model: the head surgery and what
it freezes, last-token loss and accuracy against NumPy, frozen parameters that stay put while the
others move, an end-to-end fine-tune that learns an easy task, classify, checkpoints. CLI: a fast run,
Ctrl-C and --resume to the weights of an uninterrupted run, and a one-line error per bad input.
"""
import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad.optim import AdamW

from gpt.checkpoint import CheckpointError, save_checkpoint
from gpt.data import DataLoader
from gpt.finetune.classify import (
    ClassificationDataset,
    ClassifierTrainer,
    LabeledText,
    balance,
    calc_accuracy_loader,
    calc_loss_batch,
    calc_loss_loader,
    classify,
    classify_review,
    encode_labels,
    freeze_for_classification,
    label_names,
    load_classifier,
    prepare_for_classification,
    random_split,
    read_csv,
    read_labeled_file,
    read_tsv,
    replace_output_head,
    save_classifier,
    train_classifier_simple,
)
from gpt.finetune.lora import LinearWithLoRA
from gpt.finetune.spam_demo import demo_messages
from gpt.model import GPTConfig, GPTModel
from gpt.tokenizer import BPETokenizer
from tests.cli_helpers import interrupt_at, run_cli, subprocess_env, weights

ROOT = Path(__file__).resolve().parents[1]
EOT = 256
CFG = GPTConfig(vocab_size=257, context_length=128, emb_dim=16, n_heads=2, n_layers=2, drop_rate=0.0)


def byte_tokenizer():
    """A BPE with no merges: one id per byte, <|endoftext|> = 256 (no training needed)."""
    return BPETokenizer([], {"<|endoftext|>": EOT})


def tiny_model(seed=0, **overrides):
    mg.manual_seed(seed)
    return GPTModel(GPTConfig(**{**CFG.to_dict(), **overrides}))


def log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


# --------------------------------------------------------------------------------------------------
# Reading labelled files
# --------------------------------------------------------------------------------------------------

labels_st = st.text(alphabet=st.characters(categories=["L", "N"]), min_size=1, max_size=6)
texts_st = st.text(alphabet=st.characters(blacklist_characters="\t\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029",
                                          blacklist_categories=["Cs"]), min_size=1, max_size=30
                   ).filter(lambda t: t.strip())


@given(st.lists(st.tuples(labels_st, texts_st), min_size=1, max_size=12))
def test_tsv_round_trip(rows):
    """What is written as label<TAB>text lines reads back unchanged, in order (tabs inside a text
    after the first one would be part of the text; the strategy keeps texts to one line). A file
    with no lines is an error: see test_an_empty_file_or_device_says_it_is_empty..."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "SMSSpamCollection"
        path.write_text("".join(f"{label}\t{text}\n" for label, text in rows), encoding="utf-8")
        assert read_tsv(path) == [LabeledText(label, text) for label, text in rows]


def test_tsv_skips_blank_lines_and_reads_crlf_bom_and_tabs_in_the_text(tmp_path):
    path = tmp_path / "data.tsv"
    path.write_bytes("\ufeffham\tGo until jurong point\r\n\r\n  \nspam\tFree entry\tin 2 a wkly comp\r\n".encode())
    assert read_tsv(path) == [LabeledText("ham", "Go until jurong point"),
                              LabeledText("spam", "Free entry\tin 2 a wkly comp")]


@pytest.mark.parametrize("line, problem", [
    ("spam Free entry without a tab", "no tab"),
    ("\tno label", "label"),
    ("ham\t   ", "text"),
])
def test_a_malformed_tsv_line_is_named_by_its_number(tmp_path, line, problem):
    path = tmp_path / "data.tsv"
    path.write_text(f"ham\tfine\n\nspam\talso fine\n{line}\nham\tafter\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"data.tsv line 4: .*{problem}"):
        read_tsv(path)


def test_bytes_that_are_not_utf8_are_named_by_their_line(tmp_path):
    path = tmp_path / "data.tsv"
    path.write_bytes(b"ham\tok\nspam\tok\nham\tcaf\xe9\n")
    with pytest.raises(ValueError, match="line 3: not valid UTF-8"):
        read_tsv(path)
    with pytest.raises(FileNotFoundError):
        read_tsv(tmp_path / "missing.tsv")


def test_csv_with_a_header_quoting_and_extra_columns(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text('id,Text,LABEL\n1,"Hello, world",ham\n2,"two\nlines",spam\n\n3,plain,ham\n', encoding="utf-8")
    assert read_csv(path) == [LabeledText("ham", "Hello, world"), LabeledText("spam", "two\nlines"),
                              LabeledText("ham", "plain")]
    assert read_labeled_file(path) == read_csv(path)
    custom = tmp_path / "custom.csv"
    custom.write_text("y,message\n1,a\n0,b\n", encoding="utf-8")
    assert read_csv(custom, label_column="y", text_column="message") == [LabeledText("1", "a"), LabeledText("0", "b")]


def test_the_books_own_csv_files_load_with_the_defaults(tmp_path):
    """Chapter 6 writes train.csv with the columns Label,Text and labels 0/1."""
    path = tmp_path / "train.csv"
    path.write_text("Label,Text\n0,Dude u knw also telugu..\n1,WINNER!! claim now\n", encoding="utf-8")
    examples = read_labeled_file(path)
    assert examples == [LabeledText("0", "Dude u knw also telugu.."), LabeledText("1", "WINNER!! claim now")]
    assert label_names(ex.label for ex in examples) == ["0", "1"]


@pytest.mark.parametrize("content, pattern", [
    ("label,text\nham,ok\nspam\n", r"line 3: 1 field\(s\) but the header has 2"),
    ('label,text\nham,ok\nham,"multi\nline"\n,no label\n', "line 5: the label is empty"),
    ("label,text\nham,ok\nspam,  \n", "line 3: the text is empty"),
    ("name,message\nham,ok\n", r"no column 'label' in the header \(name, message\)"),
    ("", "the file is empty"),
])
def test_csv_errors_say_what_is_wrong_and_where(tmp_path, content, pattern):
    path = tmp_path / "data.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=pattern):
        read_csv(path)


@pytest.mark.parametrize("reader", [read_tsv, read_csv, read_labeled_file])
def test_an_empty_file_or_device_says_it_is_empty_and_a_missing_one_is_not_found(tmp_path, reader):
    (tmp_path / "empty.csv").touch()
    for path in (tmp_path / "empty.csv", Path(os.devnull)):   # /dev/null is no regular file but reads empty
        with pytest.raises(ValueError, match="the file is empty"):
            reader(path)
    with pytest.raises(ValueError, match="is a folder"):
        reader(tmp_path)
    with pytest.raises(FileNotFoundError):
        reader(tmp_path / "missing.tsv")


def test_label_names_sort_text_alphabetically_and_integers_numerically():
    assert label_names(["spam", "ham", "spam"]) == ["ham", "spam"]
    assert label_names(["10", "2", "1", "2"]) == ["1", "2", "10"]
    assert label_names(["b", "10", "2"]) == ["10", "2", "b"]
    assert encode_labels(["spam", "ham", "spam"], ["ham", "spam"]).tolist() == [1, 0, 1]
    with pytest.raises(ValueError, match="unknown label 'eggs'"):
        encode_labels(["eggs"], ["ham", "spam"])


# --------------------------------------------------------------------------------------------------
# balance and random_split
# --------------------------------------------------------------------------------------------------

examples_st = st.lists(st.tuples(st.sampled_from(["ham", "spam", "eggs"]), st.integers(0, 10**6)),
                       min_size=2, max_size=60).map(lambda rows: [LabeledText(l, f"#{i} {n}") for i, (l, n) in enumerate(rows)])


@given(examples_st, st.integers(0, 2**32 - 1))
def test_balance_keeps_the_smallest_class_size_of_each_class_in_file_order(examples, seed):
    classes = {ex.label for ex in examples}
    if len(classes) < 2:
        with pytest.raises(ValueError, match="at least two classes"):
            balance(examples, seed)
        return
    kept = balance(examples, seed)
    smallest = min(sum(ex.label == c for ex in examples) for c in classes)
    assert {c: sum(ex.label == c for ex in kept) for c in classes} == {c: smallest for c in classes}
    positions = [examples.index(ex) for ex in kept]          # texts are unique: a subsequence of the input
    assert positions == sorted(positions)
    assert balance(examples, seed) == kept                     # deterministic
    for ex in examples:                                        # the smallest classes are kept whole
        if sum(e.label == ex.label for e in examples) == smallest:
            assert ex in kept


def test_balance_depends_on_the_seed():
    examples = [LabeledText("ham", str(i)) for i in range(100)] + [LabeledText("spam", "s")] * 10
    assert balance(examples, seed=1) != balance(examples, seed=2)


@given(st.lists(st.integers(), max_size=80), st.floats(0, 1), st.floats(0, 1), st.integers(0, 2**32 - 1))
def test_random_split_sizes_and_partition(items, train_frac, val_frac, seed):
    if train_frac + val_frac > 1:
        with pytest.raises(ValueError, match="at most 1"):
            random_split(items, train_frac, val_frac, seed)
        return
    train, val, test = random_split(items, train_frac, val_frac, seed)
    n = len(items)
    assert len(train) == int(n * train_frac)
    assert len(val) == min(n - len(train), int(n * val_frac))
    assert len(test) == n - len(train) - len(val)
    assert sorted(train + val + test) == sorted(items)          # a partition of the input
    assert (train, val, test) == random_split(items, train_frac, val_frac, seed)


def test_the_books_split_of_the_balanced_sms_data():
    """747 spam + 747 ham, random_split(df, 0.7, 0.1): 1,045 / 149 / 300 (section 6.2)."""
    examples = [LabeledText("ham", f"h{i}") for i in range(4825)] + [LabeledText("spam", f"s{i}") for i in range(747)]
    balanced = balance(examples, seed=123)
    assert len(balanced) == 1494
    train, val, test = random_split(balanced, 0.7, 0.1, seed=123)
    assert (len(train), len(val), len(test)) == (1045, 149, 300)
    assert random_split(balanced, 0.7, 0.1, seed=124)[0] != train


@pytest.mark.parametrize("args, pattern", [((1.5, 0.0), "train_frac"), ((0.5, -0.1), "val_frac"),
                                           ((0.5, "0.1"), "val_frac")])
def test_random_split_rejects_bad_fractions(args, pattern):
    with pytest.raises(ValueError, match=pattern):
        random_split([1, 2, 3], *args)


# --------------------------------------------------------------------------------------------------
# ClassificationDataset: padding and truncation
# --------------------------------------------------------------------------------------------------


@given(st.lists(st.text(max_size=20), min_size=1, max_size=8).filter(lambda ts: any(ts)),
       st.one_of(st.none(), st.integers(1, 25)), st.integers(0, 10))
def test_rows_are_the_encoded_text_cut_and_padded_with_end_of_text(texts, max_length, seed):
    tok = byte_tokenizer()
    labels = np.random.default_rng(seed).integers(0, 3, len(texts))
    ds = ClassificationDataset(texts, labels, tok, max_length=max_length, pad_token_id=EOT)
    encoded = [tok.encode(t, disallowed_special=()) for t in texts]
    length = max(map(len, encoded)) if max_length is None else max_length
    assert ds.max_length == length
    assert ds.input_ids.shape == (len(texts), length) and ds.input_ids.dtype == np.int64
    for row, ids in zip(ds.input_ids, encoded):
        kept = ids[:length]
        assert row[:len(kept)].tolist() == kept
        assert (row[len(kept):] == EOT).all()
    assert ds.labels.tolist() == labels.tolist()
    x, y = ds.get_batch([len(texts) - 1, 0])
    assert x.tolist() == [ds.input_ids[-1].tolist(), ds.input_ids[0].tolist()] and y.tolist() == [labels[-1], labels[0]]
    assert len(ds) == len(texts) and ds[0][0].tolist() == ds.input_ids[0].tolist()


def test_end_of_text_written_in_a_message_is_ordinary_text():
    ds = ClassificationDataset(["a<|endoftext|>"], [0], byte_tokenizer(), pad_token_id=EOT)
    assert ds.max_length == 14 and EOT not in ds.input_ids


@pytest.mark.parametrize("texts, labels, kwargs, pattern", [
    (["a", "b"], [0], {}, "2 texts but 1 labels"),
    ([], [], {}, "at least one text"),
    (["a"], [-1], {}, "non-negative"),
    (["a"], [0.5], {}, "non-negative"),
    (["a"], [0], {"max_length": 0}, "max_length"),
    ([""], [0], {}, "zero tokens"),
])
def test_dataset_errors(texts, labels, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        ClassificationDataset(texts, labels, byte_tokenizer(), **kwargs)


# --------------------------------------------------------------------------------------------------
# Model surgery
# --------------------------------------------------------------------------------------------------


def trainable(model):
    return {name for name, p in model.named_parameters() if p.requires_grad}


def test_the_new_head_maps_emb_dim_to_the_classes_and_leaves_a_tied_embedding_alone():
    model = tiny_model(tie_weights=True)
    emb = model.tok_emb.weight
    before = emb.data.copy()
    head = replace_output_head(model, 3)
    assert model.out_head is head and head.weight.shape == (3, CFG.emb_dim) and head.bias.shape == (3,)
    assert model.tok_emb.weight is emb and np.array_equal(emb.data, before)
    assert model(np.zeros((2, 5), dtype=np.int64)).shape == (2, 5, 3)
    with pytest.raises(ValueError, match="at least 2 classes"):
        replace_output_head(model, 1)


@pytest.mark.parametrize("blocks, expected_blocks", [(0, []), (1, [1]), ("1", [1]), (2, [0, 1])])
def test_freezing_leaves_the_last_blocks_the_final_norm_and_the_head(blocks, expected_blocks):
    model = tiny_model()
    replace_output_head(model, 2)
    freeze_for_classification(model, blocks)
    expected = {n for n, _ in model.named_parameters()
                if n.startswith(("final_norm.", "out_head."))
                or any(n.startswith(f"trf_blocks.{i}.") for i in expected_blocks)}
    assert trainable(model) == expected


def test_all_trains_everything_and_bad_block_counts_are_refused():
    model = tiny_model()
    prepare_for_classification(model, 2, trainable_blocks="all")
    assert trainable(model) == {n for n, _ in model.named_parameters()}
    for bad in (3, -1, "some", 1.5):
        with pytest.raises(ValueError, match="trainable_blocks must be 'all' or a number from 0 to 2"):
            freeze_for_classification(model, bad)


# --------------------------------------------------------------------------------------------------
# Loss and accuracy on the last token
# --------------------------------------------------------------------------------------------------


def random_batches(seed, n_batches=3, batch=4, length=9, classes=3):
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, CFG.vocab_size, (batch, length)), rng.integers(0, classes, batch))
            for _ in range(n_batches)]


def full_last_logits(model, x):
    with mg.no_grad():
        return model(x).data[:, -1, :].astype(np.float64)         # every position, then the last


@given(st.integers(0, 2**16), st.integers(1, 5), st.integers(1, 12))
def test_last_token_loss_matches_numpy(seed, batch, length):
    model = tiny_model(seed % 7)
    replace_output_head(model, 3)
    (x, y), = random_batches(seed, 1, batch, length)
    expected = -log_softmax(full_last_logits(model, x))[np.arange(batch), y].mean()
    loss = calc_loss_batch(x, y, model)
    assert loss.dtype == np.float32
    assert loss.item() == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_loader_loss_and_accuracy_match_numpy_over_the_first_batches():
    model = tiny_model(1)
    replace_output_head(model, 3)
    batches = random_batches(2, n_batches=4)
    per_batch_loss = [-log_softmax(full_last_logits(model, x))[np.arange(len(y)), y].mean() for x, y in batches]
    correct = [(full_last_logits(model, x).argmax(-1) == y) for x, y in batches]
    with mg.no_grad():
        assert calc_loss_loader(batches, model) == pytest.approx(np.mean(per_batch_loss), rel=1e-5)
        assert calc_loss_loader(batches, model, num_batches=2) == pytest.approx(np.mean(per_batch_loss[:2]), rel=1e-5)
    assert calc_accuracy_loader(batches, model) == np.concatenate(correct).mean()
    assert calc_accuracy_loader(batches, model, num_batches=1) == correct[0].mean()
    assert 0 < np.concatenate(correct).mean() < 1                  # a check that can tell right from wrong
    assert np.isnan(calc_accuracy_loader([], model)) and np.isnan(calc_loss_loader([], model))


def test_accuracy_runs_in_eval_mode_and_restores_the_mode():
    model = tiny_model(drop_rate=0.5)
    replace_output_head(model, 2)
    batches = random_batches(3, classes=2)
    model.train()
    first = calc_accuracy_loader(batches, model)
    assert model.training
    assert calc_accuracy_loader(batches, model) == first          # no dropout: deterministic
    model.eval()
    calc_accuracy_loader(batches, model)
    assert not model.training


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------


def demo_loaders(n=160, seed=0, batch_size=8, max_length=None):
    """Balanced generated spam/ham, byte-tokenized, split 70/10/20."""
    tok = byte_tokenizer()
    examples = balance(demo_messages(n, spam_fraction=0.4, seed=seed), seed=seed)
    labels = ["ham", "spam"]
    parts = random_split(examples, 0.7, 0.1, seed=seed)
    sets, length = [], max_length
    for part in parts:
        ds = ClassificationDataset([e.text for e in part], encode_labels([e.label for e in part], labels), tok,
                                   max_length=length, pad_token_id=EOT)
        length = ds.max_length
        sets.append(ds)
    train = DataLoader(sets[0], batch_size=batch_size, shuffle=True, seed=seed)
    val, test = (DataLoader(s, batch_size=batch_size, drop_last=False) for s in sets[1:])
    return train, val, test, tok, length


def test_frozen_parameters_stay_put_while_the_trainable_ones_move_and_the_books_five_lists():
    model = tiny_model(0, drop_rate=0.1)
    prepare_for_classification(model, 2, trainable_blocks=1)
    train, val, _, _, _ = demo_loaders(60, max_length=40)
    before = {n: p.data.copy() for n, p in model.named_parameters()}
    optimizer = AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)   # the book passes them all
    with contextlib.redirect_stdout(io.StringIO()) as out:
        result = train_classifier_simple(model, train, val, optimizer, num_epochs=2, eval_freq=3, eval_iter=1)
    train_losses, val_losses, train_accs, val_accs, examples_seen = result
    steps = 2 * len(train)
    assert len(train_losses) == len(val_losses) == len(range(0, steps, 3))
    assert len(train_accs) == len(val_accs) == 2
    assert examples_seen == steps * 8
    assert out.getvalue().count("Training accuracy:") == 2
    for name, p in model.named_parameters():
        moved = not np.array_equal(before[name], p.data)
        should_move = name.startswith(("trf_blocks.1.", "final_norm.", "out_head."))
        assert moved == should_move, name
        assert p.grad is None or should_move


def easy_task(n, seed):
    """Class 0: words of the letters a-m; class 1: words of n-z (every token carries the answer)."""
    rng = np.random.default_rng(seed)
    letters = ("abcdefghijklm", "nopqrstuvwxyz")
    labels = rng.integers(0, 2, n)
    texts = [" ".join("".join(rng.choice(list(letters[y]), rng.integers(2, 6))) for _ in range(rng.integers(1, 4)))
             for y in labels]
    return texts, labels


def test_an_end_to_end_fine_tune_learns_an_easy_task():
    tok = byte_tokenizer()
    texts, labels = easy_task(160, seed=0)
    train_set = ClassificationDataset(texts[:112], labels[:112], tok, pad_token_id=EOT)
    val_set, test_set = (ClassificationDataset(t, y, tok, max_length=train_set.max_length, pad_token_id=EOT)
                         for t, y in ((texts[112:128], labels[112:128]), (texts[128:], labels[128:])))
    train = DataLoader(train_set, batch_size=8, shuffle=True, seed=0)
    val, test = (DataLoader(s, batch_size=8, drop_last=False) for s in (val_set, test_set))
    model = tiny_model(3)                       # random init: nothing to build on but the fine-tune itself
    prepare_for_classification(model, 2, trainable_blocks="all")
    before = calc_accuracy_loader(test, model)
    optimizer = AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3, weight_decay=0.1)
    with contextlib.redirect_stdout(io.StringIO()):
        train_losses, _, _, val_accs, _ = train_classifier_simple(model, train, val, optimizer, num_epochs=4,
                                                                  eval_freq=5, eval_iter=2)
    after = calc_accuracy_loader(test, model)
    assert before < 0.75 and after >= 0.9, (before, after)
    assert train_losses[-1] < train_losses[0]
    # the trained classifier through classify(), as a user would call it
    predicted = [classify(t, model, tok, max_length=train_set.max_length, pad_token_id=EOT, labels=["a-m", "n-z"])
                 for t in texts[128:]]
    assert np.mean([p == ["a-m", "n-z"][y] for p, y in zip(predicted, labels[128:])]) == after


def test_classify_pads_like_training_and_returns_the_argmax_label():
    model = tiny_model(4)
    replace_output_head(model, 2)
    tok = byte_tokenizer()
    ids = tok.encode("hello there")
    for max_length, row in [(None, ids), (20, ids + [EOT] * 9), (5, ids[:5])]:
        expected = int(full_last_logits(model, np.array([row]))[0].argmax())
        assert classify("hello there", model, tok, max_length=max_length, pad_token_id=EOT) == expected
        assert classify("hello there", model, tok, max_length, EOT, labels=["no", "yes"]) == ["no", "yes"][expected]
        assert classify_review("hello there", model, tok, max_length, EOT) == ["not spam", "spam"][expected]
    long_text = "x" * 300                                      # longer than the context: cut to 128 tokens
    expected = int(full_last_logits(model, np.array([tok.encode(long_text)[:CFG.context_length]]))[0].argmax())
    assert classify(long_text, model, tok, max_length=500, pad_token_id=EOT) == expected
    # an empty text is one padding token; with max_length it is max_length of them
    assert classify("", model, tok, pad_token_id=EOT) == int(full_last_logits(model, np.array([[EOT]]))[0].argmax())
    expected = int(full_last_logits(model, np.array([[EOT] * 5]))[0].argmax())
    assert classify("", model, tok, max_length=5, pad_token_id=EOT) == expected


# --------------------------------------------------------------------------------------------------
# Classifier checkpoints and the resumable trainer
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lora", [None, 4])
def test_a_saved_classifier_loads_with_its_head_labels_and_lora_layers(tmp_path, lora):
    model = tiny_model(5, tie_weights=True)
    prepare_for_classification(model, 3, lora_rank=lora)
    for p in model.parameters():                                    # non-zero LoRA B, changed head
        p.data += np.float32(0.01) * np.random.default_rng(0).standard_normal(p.shape).astype(np.float32)
    save_classifier(tmp_path, model, tokenizer=byte_tokenizer(), labels=["a", "b", "c"], max_length=20,
                    pad_token_id=EOT)
    ck = load_classifier(tmp_path)
    assert ck.info["classifier"] == {"labels": ["a", "b", "c"], "max_length": 20, "pad_token_id": EOT,
                                     "lora": None if lora is None else {"rank": 4, "alpha": 4}}
    assert any(isinstance(m, LinearWithLoRA) for m in ck.model.modules()) == (lora is not None)
    x = np.arange(20)[None] % 200
    assert np.array_equal(full_last_logits(ck.model, x), full_last_logits(model, x))


def test_loading_a_language_model_as_a_classifier_is_a_clear_error(tmp_path):
    save_checkpoint(tmp_path, tiny_model(), tokenizer=byte_tokenizer())
    with pytest.raises(CheckpointError, match="not a classifier checkpoint"):
        load_classifier(tmp_path)


def test_the_trainer_records_the_classification_loss_and_accuracy():
    model = tiny_model(6, drop_rate=0.2)
    prepare_for_classification(model, 2, trainable_blocks=1)
    _, val, test, _, _ = demo_loaders(80, max_length=24)        # unshuffled loaders: same batches each time
    trainer = ClassifierTrainer(model, AdamW(model.parameters(), lr=1e-3), test, val, total_steps=1, lr=1e-3,
                                eval_iter=2)
    losses = trainer.evaluate()
    model.eval()                                                 # (evaluation runs without dropout)
    expected = (calc_loss_loader(test, model, 2), calc_loss_loader(val, model, 2))
    model.train()
    assert losses == expected and trainer.state.train_losses == [expected[0]]
    assert trainer.history["train_accs"] == [calc_accuracy_loader(test, model, 2)]
    assert trainer.history["val_accs"] == [calc_accuracy_loader(val, model, 2)]


def test_the_trainer_resumed_from_its_state_ends_with_the_same_weights(tmp_path):
    def build():
        model = tiny_model(6, drop_rate=0.2)
        prepare_for_classification(model, 2, trainable_blocks=1)
        train, val, _, _, _ = demo_loaders(80, max_length=24)
        opt = AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        return model, opt, ClassifierTrainer(model, opt, train, val, total_steps=7, lr=1e-3, eval_freq=3, eval_iter=1)

    model, _, straight = build()
    straight.run()
    model2, opt2, first = build()
    first.run(on_step=lambda t, loss: t.request_stop() if t.state.step == 4 else None)   # as Ctrl-C does
    assert first.state.step == 4
    save_classifier(tmp_path, model2, tokenizer=byte_tokenizer(), labels=["ham", "spam"], max_length=24,
                    pad_token_id=EOT, optimizer=opt2, trainer_state=first.state_dict())
    ck = load_classifier(tmp_path, load_training_state=True)
    freeze_for_classification(ck.model, 1)
    train, val, _, _, _ = demo_loaders(80, max_length=24)
    opt3 = AdamW([p for p in ck.model.parameters() if p.requires_grad], lr=1e-3)
    opt3.load_state_dict(ck.optimizer_state)
    resumed = ClassifierTrainer(ck.model, opt3, train, val, total_steps=7, lr=1e-3, eval_freq=3, eval_iter=1)
    resumed.load_state_dict(ck.trainer_state)
    resumed.run()
    for (name, a), b in zip(model.state_dict().items(), ck.model.state_dict().values()):
        assert np.array_equal(a, b), name
    assert resumed.history == straight.history and resumed.state.val_losses == straight.state.val_losses
    assert len(straight.history["val_accs"]) == 3 and straight.history["examples_seen"] == 7 * 8


# --------------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------------




@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A 'pretrained' checkpoint (random tiny model, byte tokenizer) and a demo TSV file."""
    root = tmp_path_factory.mktemp("classify")
    save_checkpoint(root / "base", tiny_model(7, emb_dim=32), tokenizer=byte_tokenizer())
    data = root / "SMSSpamCollection"
    texts, labels = easy_task(130, seed=2)
    data.write_text("".join(f"{['a-m', 'n-z'][y]}\t{t}\n" for t, y in zip(texts, labels)), encoding="utf-8")
    return root / "base", data


FAST = ["--batch-size", "8", "--lr", "3e-3", "--trainable-blocks", "all", "--eval-every", "6",
        "--eval-batches", "1", "--max-length", "20"]


@pytest.fixture(scope="module")
def finetuned(base, tmp_path_factory):
    checkpoint, data = base
    out = tmp_path_factory.mktemp("run") / "ck"
    code, stdout, stderr = run_cli("finetune-classify", "--checkpoint", checkpoint, "--data", data, *FAST,
                                   "--epochs", 3, "--out", out)
    assert code == 0, stderr
    return out, stdout


def test_finetune_classify_reports_progress_and_ends_with_the_test_accuracy(finetuned):
    out, stdout = finetuned
    lines = stdout.strip().splitlines()
    assert re.fullmatch(r"test accuracy \d+\.\d\d%", lines[-1])
    assert float(lines[-1].split()[-1][:-1]) >= 80
    assert "labels: 0 = a-m, 1 = n-z" in stdout
    assert re.search(r"data: training 91 \(a-m \d+, n-z \d+\); validation 13 .*; test 26", stdout)
    assert "before fine-tuning: training accuracy" in stdout
    assert len(re.findall(r"^step \d+ \(epoch \d\): train loss .* val acc \d+\.\d\d%$", stdout, re.M)) == 6   # 6, 12, ..., 30, 33
    ck = load_classifier(out)
    assert ck.info["classifier"]["labels"] == ["a-m", "n-z"] and ck.info["classifier"]["max_length"] == 20
    assert ck.path.name == "step-000033"                            # 3 epochs of 11 batches
    log = json.loads((out / "log.json").read_text())                # the loss log, as pretrain writes it
    assert log["eval_steps"] == [6, 12, 18, 24, 30, 33] and len(log["val_losses"]) == 6
    assert (out / "log.csv").read_text().splitlines()[0] == "step,tokens_seen,train_loss,val_loss,lr"


def test_the_built_in_demo_data_balanced_as_the_book_does(base, tmp_path):
    code, stdout, stderr = run_cli("finetune-classify", "--demo", "--balance", "--checkpoint", base[0], "--epochs", 1,
                                   "--batch-size", 32, "--max-length", 12, "--eval-every", 100, "--out", tmp_path)
    assert code == 0, stderr
    assert "data: training 350 (ham 1" in stdout and "; validation 50 (" in stdout and "; test 100 (" in stdout
    assert "labels: 0 = ham, 1 = spam" in stdout and "10 batches of 32 per epoch; 10 steps" in stdout
    assert re.fullmatch(r"test accuracy \d+\.\d\d%", stdout.strip().splitlines()[-1])
    assert load_classifier(tmp_path).info["settings"]["demo"] is True


def test_classify_prints_one_label_per_text(finetuned):
    out, _ = finetuned
    texts = ["bad cafe", "turn on your supply", "faded beige hm"]
    code, stdout, stderr = run_cli("classify", "--checkpoint", out, "--text", *texts)
    assert code == 0, stderr
    ck = load_classifier(out)
    c = ck.info["classifier"]
    assert stdout.splitlines() == [classify(t, ck.model, ck.tokenizer, c["max_length"], c["pad_token_id"],
                                            c["labels"]) for t in texts]
    assert stdout.splitlines() == ["a-m", "n-z", "a-m"]


def test_lora_from_the_command_line_trains_only_the_lora_matrices(base, tmp_path):
    checkpoint, data = base
    code, stdout, stderr = run_cli("finetune-classify", "--checkpoint", checkpoint, "--data", data, "--epochs", 1,
                                   "--batch-size", 8, "--max-length", 20, "--lora-rank", 2, "--lora-alpha", 4,
                                   "--out", tmp_path, "--quiet")
    assert code == 0, stderr
    assert stdout.count("\n") == 1 and stdout.startswith("test accuracy")
    pretrained, tuned = weights(checkpoint), weights(tmp_path)
    for name, value in tuned.items():
        if ".lora." in name:
            continue
        plain = name.replace(".linear.", ".")
        if plain.startswith("out_head"):
            continue                                               # the new head is frozen at its random init
        assert np.array_equal(value, pretrained[plain]), name
    assert not np.array_equal(tuned["out_head.lora.B"], 0)
    assert load_classifier(tmp_path).info["classifier"]["lora"] == {"rank": 2, "alpha": 4.0}


def test_from_gpt2_weights_with_gpt2s_tokenizer(reference_data, base, tmp_path):
    """--gpt2: a tiny model in GPT-2's file layout (tied head, qkv biases) with GPT-2's vocabulary;
    texts are padded with GPT-2's <|endoftext|>, 50256, and the classifier answers through classify."""
    from gpt.weights import export_hf

    mg.manual_seed(8)
    export_hf(GPTModel(GPTConfig(vocab_size=50257, context_length=32, emb_dim=16, n_heads=2, n_layers=1,
                                 drop_rate=0.0, qkv_bias=True, tie_weights=True)), tmp_path / "gpt2")
    code, stdout, stderr = run_cli("finetune-classify", "--gpt2", tmp_path / "gpt2" / "model.safetensors",
                                   "--vocab", reference_data / "gpt2", "--data", base[1], "--epochs", 1,
                                   "--batch-size", 16, "--out", tmp_path / "ck")
    assert code == 0, stderr
    assert re.fullmatch(r"test accuracy \d+\.\d\d%", stdout.strip().splitlines()[-1])
    ck = load_classifier(tmp_path / "ck")
    assert ck.info["classifier"]["pad_token_id"] == 50256 and ck.tokenizer.n_vocab == 50257
    assert ck.config.tie_weights and ck.model.out_head.weight.shape == (2, 16)
    texts = ["abc", "xyz", "<|endoftext|> is just text"]
    code, stdout, stderr = run_cli("classify", "--checkpoint", tmp_path / "ck", "--text", *texts)
    assert code == 0, stderr
    assert stdout.splitlines() == [classify(t, ck.model, ck.tokenizer, ck.info["classifier"]["max_length"], 50256,
                                            ["a-m", "n-z"]) for t in texts]



@pytest.mark.parametrize("stop", [6, 11])     # at an evaluation; at the end of the first epoch
def test_ctrl_c_saves_and_resume_reaches_the_weights_of_an_uninterrupted_run(base, finetuned, tmp_path,
                                                                             monkeypatch, stop):
    checkpoint, data = base
    args = ["finetune-classify", "--checkpoint", checkpoint, "--data", data, *FAST, "--epochs", 3, "--quiet"]
    with monkeypatch.context() as m:
        interrupt_at(m, stop, ClassifierTrainer)
        code, stdout, stderr = run_cli(*args, "--out", tmp_path)
    assert code == 130
    assert f"interrupted at step {stop} of 33" in stderr and "--resume" in stderr and "Traceback" not in stderr
    assert "test accuracy" not in stdout
    assert load_classifier(tmp_path, load_training_state=True).trainer_state["train_state"]["step"] == stop
    code, stdout, stderr = run_cli("finetune-classify", "--resume", tmp_path, "--quiet")
    assert code == 0, stderr
    straight, resumed = weights(finetuned[0]), weights(tmp_path)
    assert list(straight) == list(resumed)
    for name in straight:
        assert np.array_equal(straight[name], resumed[name]), name
    assert stdout.strip() == finetuned[1].strip().splitlines()[-1]      # the same test accuracy


def test_resume_can_extend_the_epochs(finetuned, tmp_path):
    import shutil
    shutil.copytree(finetuned[0], tmp_path / "ck")
    code, stdout, stderr = run_cli("finetune-classify", "--resume", tmp_path / "ck", "--epochs", 4)
    assert code == 0, stderr
    assert "resuming" in stdout and "at step 33 of 44" in stdout
    assert load_classifier(tmp_path / "ck").path.name == "step-000044"


@pytest.mark.parametrize("blow_up_at, last_good", [(0, None), (7, "step-000006")])
def test_diverging_training_stops_with_one_line_naming_the_last_good_checkpoint(base, tmp_path, monkeypatch,
                                                                                blow_up_at, last_good):
    checkpoint, data = base
    real_lr_at = ClassifierTrainer.lr_at
    monkeypatch.setattr(ClassifierTrainer, "lr_at",
                        lambda self, step: 1e30 if step == blow_up_at else real_lr_at(self, step))
    code, stdout, stderr = run_cli("finetune-classify", "--checkpoint", checkpoint, "--data", data, *FAST,
                                   "--out", tmp_path, "--quiet")
    assert code == 2 and stderr.count("\n") == 1 and stderr.startswith("error: ") and "nan" in stderr.lower()
    assert "Warning" not in stderr and "test accuracy" not in stdout
    if last_good is None:
        assert "no checkpoint was saved" in stderr and not (tmp_path / "latest").exists()
    else:
        assert str(tmp_path / last_good) in stderr
        ck = load_classifier(tmp_path)
        assert ck.path.name == last_good and all(np.isfinite(v).all() for v in ck.model.state_dict().values())


BAD_INPUTS = {
    "missing data file": (["--checkpoint", "{base}", "--data", "{tmp}/nope.tsv"], ["nope.tsv"]),
    "malformed line": (["--checkpoint", "{base}", "--data", "{bad}"], ["line 3", "tab"]),
    "empty data file": (["--checkpoint", "{base}", "--data", "{empty}"], ["empty.tsv", "the file is empty"]),
    "data from /dev/null": (["--checkpoint", "{base}", "--data", os.devnull], [os.devnull, "the file is empty"]),
    "blank lines only": (["--checkpoint", "{base}", "--data", "{blank}"], ["blank.tsv", "only blank lines"]),
    "empty csv": (["--checkpoint", "{base}", "--data", "{empty_csv}"], ["empty.csv", "the file is empty"]),
    "data is a folder": (["--checkpoint", "{base}", "--data", "{tmp}"], ["is a folder"]),
    "single class": (["--checkpoint", "{base}", "--data", "{one}"], ["'ham'", "two classes"]),
    "csv without the column": (["--checkpoint", "{base}", "--data", "{csv}"], ["no column 'label'"]),
    "no model": (["--data", "{data}"], ["--checkpoint", "--gpt2"]),
    "no data": (["--checkpoint", "{base}"], ["--data", "--demo"]),
    "missing checkpoint": (["--checkpoint", "{tmp}/nothing", "--data", "{data}"], ["nothing"]),
    "missing gpt2 weights": (["--gpt2", "{tmp}/model.safetensors", "--data", "{data}"], ["model.safetensors"]),
    "a classifier as the base": (["--checkpoint", "{tuned}", "--data", "{data}"], ["--resume"]),
    "too many blocks": (["--checkpoint", "{base}", "--data", "{data}", "--trainable-blocks", "3"], ["0 to 2"]),
    "blocks not a number": (["--checkpoint", "{base}", "--data", "{data}", "--trainable-blocks", "most"],
                            ["--trainable-blocks"]),
    "max length over the context": (["--checkpoint", "{base}", "--data", "{data}", "--max-length", "500"],
                                    ["500", "128"]),
    "alpha without rank": (["--checkpoint", "{base}", "--data", "{data}", "--lora-alpha", "8"], ["--lora-rank"]),
    "lora and blocks": (["--checkpoint", "{base}", "--data", "{data}", "--lora-rank", "2", "--trainable-blocks", "1"],
                        ["--lora-rank"]),
    "bad lora rank": (["--checkpoint", "{base}", "--data", "{data}", "--lora-rank", "0"], ["--lora-rank"]),
    "no test data": (["--checkpoint", "{base}", "--data", "{data}", "--train-frac", "0.9", "--val-frac", "0.1"],
                     ["--train-frac"]),
    "fraction above 1": (["--checkpoint", "{base}", "--data", "{data}", "--val-frac", "1.5"],
                         ["--val-frac", "fraction between 0 and 1"]),
    "fraction not finite": (["--checkpoint", "{base}", "--data", "{data}", "--train-frac", "nan"],
                            ["--train-frac", "finite"]),
    "batch larger than the data": (["--checkpoint", "{base}", "--data", "{data}", "--batch-size", "500"],
                                   ["--batch-size"]),
    "out holds a run": (["--checkpoint", "{base}", "--data", "{data}", "--out", "{tuned}"], ["--resume"]),
    "resume of a language model": (["--resume", "{base}"], ["not a classifier"]),
    "resume changing the lr": (["--resume", "{tuned}", "--lr", "1"], ["--lr", "resuming"]),
    "resume with other data": (["--resume", "{tuned}", "--data", "{one}"], ["differs"]),
    "resume with nothing left": (["--resume", "{tuned}"], ["already has 33 steps", "--epochs"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_ends_with_a_one_line_error(case, base, finetuned, tmp_path):
    checkpoint, data = base
    (tmp_path / "bad.tsv").write_text("ham\tok\nspam\tfine\nspam without a tab\n", encoding="utf-8")
    (tmp_path / "one.tsv").write_text("ham\tok\nham\talso ok\n", encoding="utf-8")
    (tmp_path / "x.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    for name, content in (("empty.tsv", ""), ("empty.csv", ""), ("blank.tsv", "\n  \n\n")):
        (tmp_path / name).write_text(content, encoding="utf-8")
    argv, expected = BAD_INPUTS[case]
    argv = [a.format(base=checkpoint, data=data, tmp=tmp_path, bad=tmp_path / "bad.tsv", one=tmp_path / "one.tsv",
                     csv=tmp_path / "x.csv", tuned=finetuned[0], empty=tmp_path / "empty.tsv",
                     blank=tmp_path / "blank.tsv", empty_csv=tmp_path / "empty.csv") for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    code, stdout, stderr = run_cli("finetune-classify", *argv)
    assert code == 2, stderr
    assert "Traceback" not in stderr
    error = stderr.strip().splitlines()[-1]
    if error.startswith("error:"):
        assert stderr.count("\n") == 1
    else:                                              # argparse's own: its usage, then one error line
        assert error.startswith("python -m gpt finetune-classify: error: argument") and stderr.startswith("usage:")
    for word in expected:
        assert word in error, (word, error)
    assert "test accuracy" not in stdout


@pytest.mark.parametrize("argv, expected", [
    (["--checkpoint", "{base}", "--text", "hi"], "not a classifier"),
    (["--checkpoint", "{tmp}/nothing", "--text", "hi"], "nothing"),
])
def test_classify_bad_input(argv, expected, base, tmp_path):
    code, _, stderr = run_cli("classify", *[a.format(base=base[0], tmp=tmp_path) for a in argv])
    assert code == 2 and stderr.count("\n") == 1 and expected in stderr and stderr.startswith("error:")


def test_a_malformed_file_in_a_real_process_prints_one_line_and_no_traceback(base, tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("ham\tok\n\nspam no tab\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "gpt", "finetune-classify", "--checkpoint", str(base[0]),
                             "--data", str(bad)], capture_output=True, text=True, timeout=120,
                            env=subprocess_env())
    assert result.returncode == 2
    assert result.stderr == f"error: {bad} line 3: expected 'label<TAB>text', found no tab in 'spam no tab'\n"
    assert result.stdout == ""


def test_the_chapter_6_example_runs_fast():
    # one BLAS thread: with many tiny matrix products, a busy 2-core machine is several times slower
    # when OpenBLAS's threads fight over the cores (the results are the same either way)
    env = subprocess_env(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "ch06_classification.py"), "--fast"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for heading in ("6.2", "6.3", "6.4", "6.5", "6.6", "6.7", "6.8", "Appendix E"):
        assert f"======== {heading}" in out
    accuracies = [float(v) for v in re.findall(r"^Test accuracy(?: after)?: (\d+\.\d\d)%$", out, re.M)]
    assert len(accuracies) == 3                     # before, after fine-tuning, after LoRA
    assert accuracies[1] > accuracies[0] and accuracies[2] > accuracies[0]
    change = float(re.search(r"largest logit change (\S+)$", out, re.M).group(1))
    assert change < 1e-4


@pytest.mark.parametrize("command, flags", [
    ("finetune-classify", ["--data", "--demo", "--checkpoint", "--gpt2", "--lora-rank", "--trainable-blocks",
                           "--resume", "--eval-every"]),
    ("classify", ["--checkpoint", "--text"]),
])
def test_help(command, flags):
    code, stdout, _ = run_cli(command, "--help")
    assert code == 0 and stdout.startswith("usage: python -m gpt " + command)
    for flag in flags:
        assert flag in stdout
