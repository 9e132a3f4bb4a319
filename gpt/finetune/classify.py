"""Chapter 6: fine-tuning a GPT to classify text (the book's spam classifier).

The pieces, in the book's order:

1. Data (6.2-6.3). :func:`read_tsv` reads the SMS Spam Collection format (``label<TAB>text``, one
   message per line, no header), :func:`read_csv` a CSV file with a header; :func:`balance`
   downsamples the larger classes (the book's ``create_balanced_dataset``) and :func:`random_split`
   shuffles and cuts train / validation / test. :class:`ClassificationDataset` (the book's
   ``SpamDataset``, taking texts and labels) tokenizes every text and pads it with <|endoftext|> to
   the longest training text, or truncates it to ``max_length``.
2. Model surgery (6.5). :func:`replace_output_head` swaps the 50,257-way output layer for a
   ``Linear(emb_dim, num_classes)``; :func:`freeze_for_classification` freezes everything but the last
   transformer block(s), the final LayerNorm and the new head.
3. Loss and accuracy on the LAST token (6.6). Causal attention lets only the last position see the
   whole text, so its logits (b, num_classes) are the model's answer: :func:`calc_loss_batch`,
   :func:`calc_loss_loader`, :func:`calc_accuracy_loader`.
4. Training (6.7): :func:`train_classifier_simple`, the book's loop; :class:`ClassifierTrainer`, the
   same resumable and Ctrl-C safe (what ``python -m gpt finetune-classify`` runs).
5. Using it (6.8): :func:`classify`, the book's ``classify_review``; :func:`save_classifier` and
   :func:`load_classifier` keep the labels, padding and head (and LoRA layers) with the checkpoint.

Labels are strings in files and integers in the model: the sorted distinct label names
(:func:`label_names`) are numbered 0, 1, ... -- ``ham`` = 0, ``spam`` = 1 for the SMS data.
"""
from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path
from typing import Iterable, NamedTuple, Sequence

import numpy as np

import minigrad as mg
from minigrad import nn
from minigrad.nn import functional as F

from gpt import train
from gpt.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from gpt.data import first_batches
from gpt.finetune.lora import add_lora, lora_settings, replace_linear_with_lora
from gpt.generate import encode_as_text

__all__ = [
    "LabeledText", "read_tsv", "read_csv", "read_labeled_file", "label_names", "encode_labels", "balance",
    "random_split", "ClassificationDataset", "replace_output_head", "freeze_for_classification",
    "prepare_for_classification", "calc_loss_batch", "calc_loss_loader",
    "calc_accuracy_loader", "evaluate_model", "train_classifier_simple", "ClassifierTrainer", "classify",
    "classify_review", "save_classifier", "load_classifier",
]


# ==================================================================================================
# 1. Data
# ==================================================================================================


class LabeledText(NamedTuple):
    """One example: its label (a string, as in the file) and its text."""

    label: str
    text: str


def read_text_file(path: Path) -> str:
    """The file as UTF-8 text (a leading byte-order mark dropped), for the fine-tuning data loaders.

    A missing file is FileNotFoundError. A folder, a file with no bytes at all (an empty file, or a
    device such as /dev/null that reads empty) and a byte that is not UTF-8 are ValueErrors naming
    the file (and, for the last, its line). Any readable path works, not only regular files.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(2, "no such file", str(path)) from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a folder; give the data file inside it") from None
    if not raw:
        raise ValueError(f"{path}: the file is empty; pass the file that holds the data")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ValueError(f"{path} line {line}: not valid UTF-8 text ({e.reason}); save the file as UTF-8") from None


def read_tsv(path: str | os.PathLike) -> list[LabeledText]:
    """Read the SMS Spam Collection format: ``label<TAB>text`` per line, no header.

    The text is everything after the first tab (line endings removed). Blank lines are skipped; a
    line without a tab, with an empty label or with an empty text is a ValueError naming its line,
    and so is a file with no line of text at all (see :func:`read_text_file` for the rest).
    """
    path = Path(path)
    examples = []
    for lineno, line in enumerate(read_text_file(path).split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        label, tab, text = line.partition("\t")
        label = label.strip()
        if not tab:
            raise ValueError(f"{path} line {lineno}: expected 'label<TAB>text', found no tab in {line[:60]!r}")
        if not label:
            raise ValueError(f"{path} line {lineno}: the label (before the tab) is empty")
        if not text.strip():
            raise ValueError(f"{path} line {lineno}: the text after the label {label!r} is empty")
        examples.append(LabeledText(label, text))
    if not examples:
        raise ValueError(f"{path}: the file has only blank lines; expected 'label<TAB>text' lines")
    return examples


def read_csv(path: str | os.PathLike, label_column: str = "label", text_column: str = "text") -> list[LabeledText]:
    """Read a CSV file whose first row names the columns (standard quoting: a quoted field may hold
    commas and newlines). Column names match case-insensitively, so the book's own ``Label,Text``
    files load with the defaults; other columns are ignored.

    A missing column, a row with too few fields, an empty label or an empty text is a ValueError
    naming the line.
    """
    path = Path(path)
    reader = csv.reader(io.StringIO(read_text_file(path), newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ValueError(f"{path}: the file is empty; a CSV file needs a header row naming "
                         f"the {label_column!r} and {text_column!r} columns") from None
    except csv.Error as e:
        raise ValueError(f"{path} line {reader.line_num}: {e}") from None
    names = [h.strip().lower() for h in header]
    columns = []
    for wanted in (label_column, text_column):
        if wanted.lower() not in names:
            raise ValueError(f"{path}: no column {wanted!r} in the header ({', '.join(header) or 'empty'}); "
                             "name the columns with --label-column / --text-column")
        columns.append(names.index(wanted.lower()))
    li, ti = columns
    examples = []
    try:
        for row in reader:
            if not row or not any(field.strip() for field in row):
                continue
            if len(row) <= max(li, ti):
                raise ValueError(f"{path} line {reader.line_num}: {len(row)} field(s) but the header has "
                                 f"{len(header)}")
            label, text = row[li].strip(), row[ti]
            if not label:
                raise ValueError(f"{path} line {reader.line_num}: the label is empty")
            if not text.strip():
                raise ValueError(f"{path} line {reader.line_num}: the text is empty")
            examples.append(LabeledText(label, text))
    except csv.Error as e:
        raise ValueError(f"{path} line {reader.line_num}: {e}") from None
    return examples


def read_labeled_file(path: str | os.PathLike, label_column: str = "label",
                      text_column: str = "text") -> list[LabeledText]:
    """:func:`read_csv` for a ``.csv`` file, :func:`read_tsv` for anything else (the SMS Spam
    Collection file has no extension)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return read_csv(path, label_column, text_column)
    return read_tsv(path)


_INTEGER = re.compile(r"[+-]?\d+")


def label_names(labels: Iterable[str]) -> list[str]:
    """The distinct labels in sorted order; class ``i`` is ``label_names(...)[i]``.

    Labels that are all integers sort numerically ("2" before "10"), others alphabetically
    (``["ham", "spam"]``).
    """
    distinct = set(labels)
    if distinct and all(_INTEGER.fullmatch(s) for s in distinct):
        return sorted(distinct, key=int)
    return sorted(distinct)


def encode_labels(labels: Iterable[str], names: Sequence[str]) -> np.ndarray:
    """Label strings -> class indices [n] (int64), with ``names`` from :func:`label_names`."""
    index = {name: i for i, name in enumerate(names)}
    out = []
    for label in labels:
        if label not in index:
            raise ValueError(f"unknown label {label!r}; the classes are {', '.join(names)}")
        out.append(index[label])
    return np.array(out, dtype=np.int64)


def _check_seed(seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")


def balance(examples: Sequence[LabeledText], seed: int = 123) -> list[LabeledText]:
    """Downsample every class to the size of the smallest, choosing at random with ``seed``
    (the book's ``create_balanced_dataset``: 747 ham kept out of 4,825, next to the 747 spam).

    The kept examples stay in their original order; needs at least two classes.
    """
    _check_seed(seed)
    by_class: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        by_class.setdefault(ex.label, []).append(i)
    if len(by_class) < 2:
        raise ValueError(f"balancing needs examples of at least two classes, got "
                         f"{', '.join(by_class) or 'none'}")
    n = min(len(idx) for idx in by_class.values())
    rng = np.random.default_rng(seed)
    keep = []
    for name in label_names(by_class):
        keep.extend(rng.choice(by_class[name], size=n, replace=False).tolist())
    return [examples[i] for i in sorted(keep)]


def random_split(examples: Sequence, train_frac: float, val_frac: float, seed: int = 123):
    """Shuffle with ``seed`` and cut into (train, validation, test), as the book's ``random_split``:
    the first ``int(n * train_frac)`` examples train, the next ``int(n * val_frac)`` validate, the
    rest test (the book uses 0.7 and 0.1, leaving 0.2 for testing)."""
    _check_seed(seed)
    for name, frac in (("train_frac", train_frac), ("val_frac", val_frac)):
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 <= frac <= 1:
            raise ValueError(f"{name} must be a number between 0 and 1, got {frac!r}")
    if train_frac + val_frac > 1 + 1e-12:
        raise ValueError(f"train_frac + val_frac must be at most 1, got {train_frac} + {val_frac}")
    n = len(examples)
    order = np.random.default_rng(seed).permutation(n)
    shuffled = [examples[i] for i in order]
    train_end = int(n * train_frac)
    val_end = min(n, train_end + int(n * val_frac))
    return shuffled[:train_end], shuffled[train_end:val_end], shuffled[val_end:]



class ClassificationDataset:
    """Texts as equal-length rows of token ids, with their class labels (the book's ``SpamDataset``).

    Every text is tokenized; with ``max_length=None`` the rows are as long as the longest text,
    otherwise every text is cut to its first ``max_length`` tokens. Shorter texts are padded on the
    right with ``pad_token_id`` (GPT-2's <|endoftext|>, 50256). Validation and test sets take the
    training set's length: ``ClassificationDataset(..., max_length=train_dataset.max_length)``.

    Attributes:
        input_ids: int64 [n, max_length];  labels: int64 [n];  encoded_texts: the unpadded ids.

    ``dataset[i]`` is ``(input_ids[i], labels[i])``; ``get_batch(indices)`` stacks a batch for
    :class:`gpt.data.DataLoader`: (inputs [b, max_length], labels [b]).
    """

    def __init__(self, texts: Sequence[str], labels: Sequence[int], tokenizer, max_length: int | None = None,
                 pad_token_id: int = 50256):
        texts = list(texts)
        labels = np.asarray(labels)
        if len(texts) != len(labels):
            raise ValueError(f"got {len(texts)} texts but {len(labels)} labels")
        if not texts:
            raise ValueError("a ClassificationDataset needs at least one text")
        if labels.dtype.kind not in "iu" or labels.min() < 0:
            raise ValueError("labels must be non-negative class indices (see encode_labels)")
        self.encoded_texts = [encode_as_text(tokenizer, t) for t in texts]
        if max_length is None:
            self.max_length = self._longest_encoded_length()
            if self.max_length == 0:
                raise ValueError("every text encodes to zero tokens")
        else:
            if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)) or max_length < 1:
                raise ValueError(f"max_length must be a positive integer or None, got {max_length!r}")
            self.max_length = int(max_length)
            self.encoded_texts = [ids[:self.max_length] for ids in self.encoded_texts]
        self.pad_token_id = int(pad_token_id)
        self.input_ids = np.full((len(texts), self.max_length), self.pad_token_id, dtype=np.int64)
        for row, ids in zip(self.input_ids, self.encoded_texts):
            row[:len(ids)] = ids
        self.labels = labels.astype(np.int64)

    def _longest_encoded_length(self) -> int:
        return max(len(ids) for ids in self.encoded_texts)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.int64]:
        return self.input_ids[index], self.labels[index]

    def get_batch(self, indices) -> tuple[np.ndarray, np.ndarray]:
        idx = np.asarray(indices, dtype=np.int64)
        return self.input_ids[idx], self.labels[idx]


# ==================================================================================================
# 2. Model surgery
# ==================================================================================================


def replace_output_head(model, num_classes: int) -> nn.Linear:
    """Replace ``model.out_head`` (emb_dim -> vocab) by a new ``Linear(emb_dim, num_classes)`` with a
    bias (initialised from minigrad's generator, like any Linear); returns the new head. A head tied
    to the token embedding is untied by this: the embedding keeps its weights."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {num_classes!r}")
    model.out_head = nn.Linear(model.cfg.emb_dim, int(num_classes))
    return model.out_head


def _trainable_blocks(model, trainable_blocks) -> int:
    n = len(model.trf_blocks)
    if trainable_blocks == "all":
        return n
    if isinstance(trainable_blocks, str) and trainable_blocks.isdigit():
        trainable_blocks = int(trainable_blocks)
    if isinstance(trainable_blocks, bool) or not isinstance(trainable_blocks, (int, np.integer)) \
            or not 0 <= trainable_blocks <= n:
        raise ValueError(f"trainable_blocks must be 'all' or a number from 0 to {n} (the model has {n} "
                         f"transformer blocks), got {trainable_blocks!r}")
    return int(trainable_blocks)


def freeze_for_classification(model, trainable_blocks: int | str = 1):
    """Freeze the model, then unfreeze the last ``trainable_blocks`` transformer blocks, the final
    LayerNorm and the output head (the book's choice is 1). ``"all"`` trains every parameter, the
    embeddings included (the book's exercise 6.3). Returns the model."""
    k = _trainable_blocks(model, trainable_blocks)
    if trainable_blocks == "all":
        return model.requires_grad_(True)
    model.requires_grad_(False)
    blocks = list(model.trf_blocks)
    for block in blocks[len(blocks) - k:]:
        block.requires_grad_(True)
    model.final_norm.requires_grad_(True)
    model.out_head.requires_grad_(True)
    return model


def prepare_for_classification(model, num_classes: int, trainable_blocks: int | str = 1,
                               lora_rank: int | None = None, lora_alpha: float | None = None):
    """The whole surgery in one call. Without LoRA: new head, then :func:`freeze_for_classification`.
    With ``lora_rank``: new head, everything frozen, then every Linear (the new head too) wrapped in
    LoRA of that rank and ``lora_alpha`` (default: the rank), so only A and B train, as in appendix E.
    Returns the model."""
    replace_output_head(model, num_classes)
    if lora_rank is None:
        if lora_alpha is not None:
            raise ValueError("lora_alpha needs lora_rank")
        return freeze_for_classification(model, trainable_blocks)
    return add_lora(model, lora_rank, lora_alpha)


# ==================================================================================================
# 3. Loss and accuracy on the last token
# ==================================================================================================


def _last_token_logits(model, input_batch):
    """Logits of the last position: (b, T) ids -> (b, num_classes). ``last_only`` skips the final
    norm and head for the other positions (same numbers as the book's ``model(x)[:, -1, :]``)."""
    return model(input_batch, last_only=True)[:, -1, :]


def calc_loss_batch(input_batch, target_batch, model):
    """Mean cross-entropy of the last token's class logits. inputs (b, T) ids, targets (b,) classes."""
    logits = _last_token_logits(model, input_batch)                 # (b, num_classes)
    return F.cross_entropy(logits, np.asarray(target_batch))


def calc_loss_loader(data_loader, model, num_batches: int | None = None) -> float:
    """Mean of :func:`calc_loss_batch` over the first ``num_batches`` batches; NaN if there are none."""
    return train.calc_loss_loader(data_loader, model, num_batches, loss_batch=calc_loss_batch)


def calc_accuracy_loader(data_loader, model, num_batches: int | None = None) -> float:
    """Fraction of examples whose last-token argmax is the label, over the first ``num_batches``
    batches (all by default); NaN if there are none. Runs in eval mode without gradients and
    restores the model's mode afterwards."""
    was_training = model.training
    model.eval()
    correct = seen = 0
    try:
        with mg.no_grad():
            for input_batch, target_batch in first_batches(data_loader, num_batches):
                predicted = np.argmax(_last_token_logits(model, input_batch).data, axis=-1)   # (b,)
                correct += int((predicted == np.asarray(target_batch)).sum())
                seen += len(predicted)
    finally:
        model.train(was_training)
    return correct / seen if seen else float("nan")


def evaluate_model(model, train_loader, val_loader, eval_iter: int) -> tuple[float, float]:
    """Training and validation loss on ``eval_iter`` batches each, in eval mode without gradients."""
    return train.evaluate_model(model, train_loader, val_loader, eval_iter, loss_batch=calc_loss_batch)


# ==================================================================================================
# 4. Training
# ==================================================================================================


def train_classifier_simple(model, train_loader, val_loader, optimizer, num_epochs: int, eval_freq: int,
                            eval_iter: int):
    """The book's chapter-6 loop: a step per batch, losses every ``eval_freq`` steps (on
    ``eval_iter`` batches), accuracies after every epoch (on ``eval_iter`` batches).

    Returns (train_losses, val_losses, train_accs, val_accs, examples_seen): two lists per
    evaluation, two per epoch, and the number of training examples seen in total.
    """
    train_losses, val_losses, train_accs, val_accs = [], [], [], []
    examples_seen, global_step = 0, -1
    for epoch in range(num_epochs):
        model.train()
        for input_batch, target_batch in train_loader:
            optimizer.zero_grad()
            loss = calc_loss_batch(input_batch, target_batch, model)
            loss.backward()
            optimizer.step()
            examples_seen += len(input_batch)
            global_step += 1
            if global_step % eval_freq == 0:
                train_loss, val_loss = evaluate_model(model, train_loader, val_loader, eval_iter)
                train_losses.append(train_loss)
                val_losses.append(val_loss)
                print(f"Ep {epoch + 1} (Step {global_step:06d}): "
                      f"Train loss {train_loss:.3f}, Val loss {val_loss:.3f}")
        train_accuracy = calc_accuracy_loader(train_loader, model, num_batches=eval_iter)
        val_accuracy = calc_accuracy_loader(val_loader, model, num_batches=eval_iter)
        print(f"Training accuracy: {train_accuracy * 100:.2f}% | Validation accuracy: {val_accuracy * 100:.2f}%")
        train_accs.append(train_accuracy)
        val_accs.append(val_accuracy)
    return train_losses, val_losses, train_accs, val_accs, examples_seen


class ClassifierTrainer(train.Trainer):
    """:class:`gpt.train.Trainer` with the classification loss: resumable bit for bit
    (``state_dict``/``load_state_dict``), stops cleanly between two steps on request (Ctrl-C), and
    raises :class:`~gpt.train.NonFiniteLossError` instead of training on NaNs.

    The book's settings: a constant learning rate (``lr``), no gradient clipping. Every ``eval_freq``
    steps it records the training and validation loss and accuracy on ``eval_iter`` batches each
    (``history``: ``train_accs``, ``val_accs``, ``examples_seen``; the losses are in ``state``).
    """

    def __init__(self, model, optimizer, train_loader, val_loader=None, *, total_steps: int, lr: float,
                 eval_freq: int = 50, eval_iter: int = 5, grad_clip: float | None = None):
        super().__init__(model, optimizer, train_loader, val_loader, total_steps=total_steps, peak_lr=lr,
                         warmup_steps=0, min_lr=lr, grad_clip=grad_clip, eval_freq=eval_freq, eval_iter=eval_iter)
        self.history = {"examples_seen": 0, "train_accs": [], "val_accs": []}

    def compute_loss(self, input_batch, target_batch):
        return calc_loss_batch(input_batch, target_batch, self.model)     # last-token classification loss

    def train_step(self, input_batch, target_batch) -> float:
        value = super().train_step(input_batch, target_batch)
        self.history["examples_seen"] += len(input_batch)
        return value

    def evaluate(self) -> tuple[float, float]:
        train_loss, val_loss = super().evaluate()       # the losses, with compute_loss above
        self.history["train_accs"].append(calc_accuracy_loader(self.train_loader, self.model, self.eval_iter))
        self.history["val_accs"].append(calc_accuracy_loader(self.val_loader or [], self.model, self.eval_iter))
        return train_loss, val_loss

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["classifier_history"] = {k: (list(v) if isinstance(v, list) else v) for k, v in self.history.items()}
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        history = state.get("classifier_history")
        if history is None:
            raise ValueError("the training state has no classifier history; was it saved by a ClassifierTrainer?")
        self.history = {"examples_seen": int(history["examples_seen"]), "train_accs": list(history["train_accs"]),
                        "val_accs": list(history["val_accs"])}


# ==================================================================================================
# 5. Using the classifier
# ==================================================================================================


def classify(text: str, model, tokenizer, max_length: int | None = None, pad_token_id: int = 50256,
             labels: Sequence[str] | None = None):
    """The predicted class of ``text`` (the book's ``classify_review``): ``labels[i]`` for the
    argmax ``i`` of the last token's logits, or ``i`` itself when ``labels`` is None.

    The text is cut to ``max_length`` tokens (and to the model's context length) and padded with
    ``pad_token_id`` to ``max_length``, as in training; pass the training set's ``max_length``.
    """
    ids = encode_as_text(tokenizer, text)
    context = model.cfg.context_length
    length = context if max_length is None else min(max_length, context)
    ids = ids[:length]
    if max_length is not None:
        ids = ids + [pad_token_id] * (length - len(ids))
    if not ids:
        ids = [pad_token_id]
    was_training = model.training
    model.eval()
    with mg.no_grad():
        logits = _last_token_logits(model, np.array([ids], dtype=np.int64))     # (1, num_classes)
    model.train(was_training)
    predicted = int(np.argmax(logits.data[0]))
    return predicted if labels is None else labels[predicted]


def classify_review(text: str, model, tokenizer, max_length: int | None = None, pad_token_id: int = 50256):
    """The book's name and its two answers, "spam" and "not spam"."""
    return classify(text, model, tokenizer, max_length, pad_token_id, labels=("not spam", "spam"))


def save_classifier(directory, model, *, tokenizer, labels: Sequence[str], max_length: int,
                    pad_token_id: int, optimizer=None, trainer_state: dict | None = None,
                    info: dict | None = None, keep: int = 2) -> Path:
    """:func:`gpt.checkpoint.save_checkpoint` (atomic, ``latest``, pruning) plus what a classifier
    needs to be rebuilt and used: ``info["classifier"]`` holds the label names (class i is
    ``labels[i]``), ``max_length``, ``pad_token_id`` and the LoRA rank and alpha, if any."""
    labels = [str(s) for s in labels]
    if len(labels) != model.out_head.out_features:
        raise ValueError(f"{len(labels)} label names for a head with {model.out_head.out_features} outputs")
    classifier = {"labels": labels, "max_length": int(max_length), "pad_token_id": int(pad_token_id),
                  "lora": lora_settings(model)}
    if getattr(model, "pooling", None):          # an encoder classifier: how its text vector is pooled
        classifier["pooling"] = model.pooling
    info = dict(info or {}, task="classification", classifier=classifier)
    return save_checkpoint(directory, model, tokenizer=tokenizer, optimizer=optimizer,
                           trainer_state=trainer_state, info=info, keep=keep)


def load_classifier(directory, *, load_training_state: bool = False):
    """Read a checkpoint written by :func:`save_classifier`: the model is rebuilt with its
    classification head (and LoRA layers) before its weights are loaded. Returns a
    :class:`gpt.checkpoint.Checkpoint`; ``ck.info["classifier"]`` has ``labels``, ``max_length``
    and ``pad_token_id``. Raises :class:`~gpt.checkpoint.CheckpointError` for anything else."""
    def prepare(model, info: dict) -> None:
        c = info.get("classifier")
        if not isinstance(c, dict):
            raise CheckpointError(f"{directory}: not a classifier checkpoint (no classifier settings in "
                                  "config.json); make one with 'python -m gpt finetune-classify'")
        try:
            labels = [str(s) for s in c["labels"]]
            int(c["max_length"]), int(c["pad_token_id"])
            if c.get("pooling"):             # an encoder: BERT + pooling + head (gpt.finetune.classify_encoder)
                from gpt.finetune.classify_encoder import BertClassifier

                model = BertClassifier(getattr(model, "bert", model), len(labels), c["pooling"],
                                       pad_token_id=int(c["pad_token_id"]))
            else:
                replace_output_head(model, len(labels))
            if c.get("lora"):
                replace_linear_with_lora(model, int(c["lora"]["rank"]), c["lora"]["alpha"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{directory}: the classifier settings in config.json are damaged ({e})") from None
        return model

    return load_checkpoint(directory, load_training_state=load_training_state, prepare=prepare)
