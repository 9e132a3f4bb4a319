"""Masked-language-model pretraining: how BERT learns (beyond the book, which trains only the GPT).

A GPT learns by predicting each next token from the ones before it. An encoder sees the whole
sentence at once, so that task would be trivial; BERT instead hides some tokens and predicts them
from both sides. The rule (BERT paper, section 3.1):

* choose 15% of the tokens (never [CLS], [SEP] or [PAD]);
* of those, replace 80% by [MASK], 10% by a random token, and keep 10% as they are (so the model
  cannot learn that only [MASK] positions matter, and must keep a good vector for every token);
* the loss is the cross-entropy at the chosen positions only. The other targets are
  ``IGNORE`` (-100), which ``minigrad``'s cross_entropy skips, and the MLM head is applied only to
  the chosen positions' vectors (85% of its vocabulary-sized product is never computed).

Sequences: the token stream is cut into windows of ``context_length - 2`` tokens (as the GPT's
windows, without overlap), each read as ``[CLS] window [SEP]``: a fixed shape, no padding.

The masks are drawn from a generator that belongs to the trainer's state (:class:`MLMTrainer`),
so a run resumed from a checkpoint masks exactly as an uninterrupted run would. Evaluations draw
from a fresh generator of a fixed seed: every evaluation masks the same positions, and the numbers
are comparable from one evaluation to the next.

The vocabulary is the project's byte-level BPE (``gpt.tokenizer.BPETokenizer``, trained on the
corpus as ``pretrain`` always does) with BERT's special tokens added: [PAD] [CLS] [SEP] [MASK]
[UNK] (a byte-level BPE never needs [UNK]; it is there so the vocabulary reads as BERT's).
:class:`BertTokenizer` wraps it with BERT's ``encode`` (adding [CLS] ... [SEP]) for
``gpt.embeddings.SentenceEncoder``.

Shapes: b = batch, T = tokens in a sequence, d = emb_dim, V = vocab_size, n = chosen positions.
"""
from __future__ import annotations


import numpy as np

import minigrad as mg
from minigrad.nn import functional as F

from gpt.train import Trainer

SPECIAL_TOKENS = ("[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]")
IGNORE = -100                # cross_entropy's ignore_index: the targets of positions not chosen
MASK_PROB = 0.15             # share of tokens chosen
MASK_SHARES = (0.8, 0.1)     # of the chosen: replaced by [MASK], by a random token; the rest is kept


class BertTokenizer:
    """A BPE tokenizer that encodes as BERT's do: ``[CLS] text [SEP]``. For SentenceEncoder.

    ``encode(text, add_special_tokens=True, allowed_special=...)``, ``token_to_id``, ``decode``.
    """

    def __init__(self, bpe):
        missing = [s for s in SPECIAL_TOKENS if s not in bpe.special_tokens]
        if missing:
            raise ValueError(f"the tokenizer has no {', '.join(missing)}: train it with "
                             f"special_tokens={SPECIAL_TOKENS} (python -m gpt pretrain --arch bert does)")
        self.bpe = bpe
        self.cls_id, self.sep_id = bpe.special_tokens["[CLS]"], bpe.special_tokens["[SEP]"]

    @property
    def vocab_size(self) -> int:
        return self.bpe.n_vocab

    def token_to_id(self, token: str) -> int | None:
        return self.bpe.special_tokens.get(token)

    def encode(self, text: str, add_special_tokens: bool = True, allowed_special="all") -> list[int]:
        ids = self.bpe.encode(text, allowed_special=allowed_special)
        return [self.cls_id, *ids, self.sep_id] if add_special_tokens else ids

    def decode(self, ids) -> str:
        return self.bpe.decode(list(ids))


def special_ids(tokenizer) -> dict[str, int]:
    """{"[PAD]": id, ...} of a BPETokenizer trained with :data:`SPECIAL_TOKENS`."""
    return {s: tokenizer.special_tokens[s] for s in SPECIAL_TOKENS}


def add_cls_sep(windows: np.ndarray, cls_id: int, sep_id: int) -> np.ndarray:
    """(b, T - 2) token windows -> (b, T) int64 sequences ``[CLS] window [SEP]``."""
    windows = np.asarray(windows, dtype=np.int64)
    b = windows.shape[0]
    return np.concatenate([np.full((b, 1), cls_id), windows, np.full((b, 1), sep_id)], axis=1)


def mask_tokens(ids: np.ndarray, rng: np.random.Generator, mask_id: int, ordinary_ids: np.ndarray,
                protected: np.ndarray | None = None, mask_prob: float = MASK_PROB) -> tuple[np.ndarray, np.ndarray]:
    """BERT's masking rule. ids: (b, T) ints -> (inputs (b, T), targets (b, T)).

    Each position not ``protected`` ((b, T) bool; e.g. [CLS], [SEP], [PAD]) is chosen with
    probability ``mask_prob``; a chosen one becomes [MASK] (80%), a token drawn uniformly from
    ``ordinary_ids`` (10%), or stays (10%). targets hold the original id at chosen positions and
    :data:`IGNORE` elsewhere. The draws are whole arrays of fixed shape (three per call whatever the
    ids are), so the generator advances the same way for every batch of a shape. A batch where no
    position came out chosen gets one (the first unprotected position of largest draw), so that
    every batch has a loss.
    """
    ids = np.asarray(ids, dtype=np.int64)
    protected = np.zeros(ids.shape, dtype=bool) if protected is None else np.asarray(protected, dtype=bool)
    u = rng.random(ids.shape)                                  # chosen when u < mask_prob
    how = rng.random(ids.shape)                                # [MASK] / random / kept
    random_ids = np.asarray(ordinary_ids)[rng.integers(len(ordinary_ids), size=ids.shape)]
    chosen = (u < mask_prob) & ~protected
    if not chosen.any() and not protected.all():
        chosen.flat[np.argmax(np.where(protected, -1.0, how).ravel())] = True
    inputs = ids.copy()
    to_mask = chosen & (how < MASK_SHARES[0])
    to_random = chosen & (how >= MASK_SHARES[0]) & (how < MASK_SHARES[0] + MASK_SHARES[1])
    inputs[to_mask] = mask_id
    inputs[to_random] = random_ids[to_random]
    targets = np.where(chosen, ids, IGNORE)
    return inputs, targets


def mlm_loss(model, inputs: np.ndarray, targets: np.ndarray, attention_mask=None):
    """(mean cross-entropy at the chosen positions (a Tensor), correct predictions, chosen positions).

    ``model`` is a :class:`gpt.architectures.bert.BertForMaskedLM`; inputs, targets: (b, T) from
    :func:`mask_tokens`. The encoder reads every position; the MLM head is applied to the n chosen
    positions only: (n, d) -> (n, V). The same loss as cross-entropy of the full (b, T, V) logits
    with ignore_index=IGNORE, for 15% of the head's work.
    """
    targets = np.asarray(targets)
    rows, cols = np.nonzero(targets != IGNORE)                  # (n,), (n,)
    hidden = model.bert(inputs, attention_mask)                 # (b, T, d)
    logits = model.mlm_head(hidden[rows, cols])                 # (n, V)
    wanted = targets[rows, cols]
    loss = F.cross_entropy(logits, wanted)
    correct = int((logits.data.argmax(axis=-1) == wanted).sum())
    return loss, correct, len(wanted)


class MLMTrainer(Trainer):
    """The resumable appendix-D loop (:class:`gpt.train.Trainer`) with a masked-language-model loss.

    The loaders give windows of ``context_length - 2`` tokens (their targets are not used); each
    batch is wrapped in [CLS] ... [SEP] and masked with :func:`mask_tokens`, drawing from
    ``mask_rng``, which :meth:`state_dict` saves and :meth:`load_state_dict` restores. Masked-token
    accuracy is tracked beside the loss: ``last_accuracy`` (the last step's), and at each evaluation
    ``state.metrics["train_accuracy"]`` / ``["val_accuracy"]`` (lists, like the losses).
    """

    def __init__(self, *args, specials: dict[str, int], vocab_size: int, mask_seed: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.specials = dict(specials)
        self.mask_id = self.specials["[MASK]"]
        special = set(self.specials.values())
        self.ordinary_ids = np.array([i for i in range(vocab_size) if i not in special], dtype=np.int64)
        self.mask_seed = mask_seed
        self.mask_rng = np.random.default_rng(mask_seed)
        self.last_accuracy = float("nan")
        self.state.metrics.setdefault("train_accuracy", [])
        self.state.metrics.setdefault("val_accuracy", [])

    def masked_batch(self, windows, rng) -> tuple[np.ndarray, np.ndarray]:
        """(b, T - 2) windows -> masked (inputs, targets), each (b, T)."""
        ids = add_cls_sep(windows, self.specials["[CLS]"], self.specials["[SEP]"])
        protected = np.isin(ids, list(self.specials.values()))
        return mask_tokens(ids, rng, self.mask_id, self.ordinary_ids, protected)

    def train_step(self, input_batch, target_batch) -> float:
        inputs, targets = self.masked_batch(input_batch, self.mask_rng)
        return super().train_step(inputs, targets)

    def compute_loss(self, input_batch, target_batch):
        loss, correct, total = mlm_loss(self.model, input_batch, target_batch)
        self._counts = (correct, total)
        if self.model.training:
            self.last_accuracy = correct / total
        return loss

    def measure(self, loader, num_batches: int | None = None) -> tuple[float, float]:
        """(mean loss over batches, masked-token accuracy) on the first ``num_batches`` batches of
        ``loader`` (all by default), masked by a fresh generator of the run's evaluation seed; in
        eval mode, without gradients. (NaN, NaN) for an empty loader."""
        from gpt.data import first_batches

        rng = np.random.default_rng(self.mask_seed + 1)
        was_training = self.model.training
        self.model.eval()
        total_loss, batches, correct, chosen = 0.0, 0, 0, 0
        try:
            with mg.no_grad():
                for windows, _ in first_batches(loader, num_batches):
                    inputs, targets = self.masked_batch(windows, rng)
                    loss, c, n = mlm_loss(self.model, inputs, targets)
                    total_loss, batches, correct, chosen = total_loss + loss.item(), batches + 1, correct + c, chosen + n
        finally:
            self.model.train(was_training)
        if not batches:
            return float("nan"), float("nan")
        return total_loss / batches, correct / chosen

    def evaluate(self) -> tuple[float, float]:
        train_loss, train_acc = self.measure(self.train_loader, self.eval_iter)
        val_loss, val_acc = self.measure(self.val_loader or [], self.eval_iter)
        return self.record_evaluation(train_loss, val_loss, train_accuracy=train_acc, val_accuracy=val_acc)

    def progress_note(self) -> str:
        """What the progress line adds after the loss."""
        return f"acc {self.last_accuracy:.3f}"

    def state_dict(self) -> dict:
        return {**super().state_dict(), "mask_rng": self.mask_rng.bit_generator.state,
                "last_accuracy": self.last_accuracy}

    def load_state_dict(self, state: dict) -> None:
        if "mask_rng" not in state:
            raise ValueError("the checkpoint holds no masking generator (not a masked-language-model run)")
        super().load_state_dict(state)
        self.mask_rng.bit_generator.state = state["mask_rng"]
        self.last_accuracy = state.get("last_accuracy", float("nan"))
        self.state.metrics.setdefault("train_accuracy", [])
        self.state.metrics.setdefault("val_accuracy", [])
