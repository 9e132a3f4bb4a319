"""Chapter 7's bonus: preference tuning with DPO (direct preference optimization, Rafailov et al. 2023).

After instruction fine-tuning, a model answers; DPO then teaches it which of two answers to the same
prompt is preferred, without a reward model and without sampling: it raises the log-probability of
the chosen answer and lowers that of the rejected one, each measured against a frozen copy of the
model it started from (the *reference*), so the policy cannot drift far from what it already knew.

The pieces, in the order of the book's notebook (``ch07/04_preference-tuning-with-dpo``):

1. Data. A JSON list of ``{"instruction", "input", "chosen", "rejected"}`` entries (the book's
   ``instruction-data-with-preference.json`` also has an ``output``; it is kept but unused), with
   chapter 7's Alpaca prompt: :func:`load_preference_data` / :func:`check_preference_data`.
2. Batches. :class:`PreferenceDataset` encodes prompt + chosen and prompt + rejected once;
   :func:`dpo_collate_fn` pads both with <|endoftext|> to a common length and builds the masks of the
   tokens that count (see its docstring for where the answer starts, and why).
3. Log-probabilities. :func:`compute_logprobs` sums ``log p(token | tokens before it)`` over the
   masked tokens of each row, as the paper does (``average=True``: the book's per-token mean).
4. The loss. :func:`dpo_loss`, one fused op with a hand-derived backward::

       z    = beta * ((pi_c - ref_c) - (pi_r - ref_r))        per pair, the reward margin
       loss = mean(-log sigmoid(z))

   and the rewards ``beta * (pi_c - ref_c)`` and ``beta * (pi_r - ref_r)``.
5. Training. :class:`DPOTrainer` is chapter 5's resumable :class:`gpt.train.Trainer` with the DPO
   loss: the reference model runs without a graph, once per batch; each evaluation records the loss,
   the mean chosen and rejected rewards, their margin and the *reward accuracy* (the share of pairs
   whose margin is positive, TRL's ``rewards/accuracies``; 0 at the start, when the policy is the
   reference) on training and validation batches. The figure to compare before and after is the
   *preference accuracy*: how often the model itself finds the chosen answer more likely than the
   rejected one (:func:`preference_accuracy`).
6. Beyond the book: a demo (:func:`demo_preference_data`) that makes pairs from chapter 7's demo
   questions -- chosen: the exact answer; rejected: a plausible wrong one (an off-by-one count or
   sum, the word in the wrong case, another task's answer to the same word) -- so that the effect
   of DPO can be measured by exact match, offline. With ``flaws=True`` the rejected answer of the
   upper-casing and letter-counting questions is the systematic mistake a model learns from noisy
   labels (:func:`gpt.finetune.instruct.add_demo_flaws`: the word left in lower case, one letter too
   many), which is what ``finetune-dpo --demo`` starts from: DPO then has a mistake to unlearn.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

import minigrad as mg
from minigrad.function import Function

from gpt.checkpoint import save_checkpoint
from gpt.finetune.instruct import RESPONSE_HEADER, check_entries, format_input, load_entries
from gpt.finetune.lora import lora_settings
from gpt.generate import encode_as_text
from gpt.train import NonFiniteLossError, Trainer

__all__ = [
    "check_preference_data", "load_preference_data", "PreferenceDataset", "PreferenceBatch", "dpo_collate_fn",
    "compute_logprobs", "DPOLoss", "dpo_loss", "compute_dpo_loss_batch", "compute_dpo_loss_loader",
    "stack_pairs", "preference_metrics", "preference_accuracy", "DPOTrainer", "save_dpo_checkpoint", "demo_preference_data", "REJECTION_KINDS",
]

# ==================================================================================================
# 1. Data
# ==================================================================================================


PREFERENCE_ANSWERS, PREFERENCE_ENTRY = ("chosen", "rejected"), "a preference entry"


def check_preference_data(entries, source: str = "the data") -> list[dict]:
    """Check ``{"instruction", "input", "chosen", "rejected"}`` entries (other keys, such as the
    book's ``output``, are kept; see :func:`gpt.finetune.instruct.check_entries`)."""
    return check_entries(entries, source, answers=PREFERENCE_ANSWERS, kind=PREFERENCE_ENTRY)


def load_preference_data(path: str | os.PathLike) -> list[dict]:
    """Read a JSON file holding a list of preference entries (the book's
    ``instruction-data-with-preference.json``). Raises FileNotFoundError, or a one-line ValueError
    naming the file and the problem (empty, a folder, not UTF-8, not JSON, a bad entry by index)."""
    return load_entries(path, answers=PREFERENCE_ANSWERS, kind=PREFERENCE_ENTRY)


# ==================================================================================================
# 2. Batches
# ==================================================================================================


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class PreferenceDataset:
    """Every entry encoded once (the book's ``PreferenceDataset``): ``dataset[i]`` is a dict with

    - ``"prompt"``: the ids of ``format_input(entry)``;
    - ``"chosen"`` / ``"rejected"``: the ids of ``prompt + "\\n\\n### Response:\\n" + answer``;
    - ``"chosen_start"`` / ``"rejected_start"`` (beyond the book): the index of the answer's first
      token in each, i.e. the length of the start it shares with the ids of prompt + response header
      (the same as the header's end unless the tokenizer merges across it).
    """

    def __init__(self, data: Sequence[dict], tokenizer):
        self.data = list(data)
        self.encoded_texts: list[dict] = []
        for entry in self.data:
            prompt = format_input(entry)
            prompt_tokens = encode_as_text(tokenizer, prompt)
            header_tokens = encode_as_text(tokenizer, prompt + RESPONSE_HEADER)
            item = {"prompt": prompt_tokens}
            for key in ("chosen", "rejected"):
                ids = encode_as_text(tokenizer, prompt + RESPONSE_HEADER + entry[key])
                item[key] = ids
                item[f"{key}_start"] = _common_prefix(header_tokens, ids)
            self.encoded_texts.append(item)

    def __len__(self) -> int:
        return len(self.encoded_texts)

    def __getitem__(self, index: int) -> dict:
        return self.encoded_texts[index]


class PreferenceBatch(NamedTuple):
    """A batch of b pairs as one array of 2b rows: the chosen sequences, then the rejected ones, so the
    policy (and the reference) runs once per batch. Unpacks as ``(token_ids, mask)``, which is the
    ``(inputs, targets)`` pair :class:`gpt.train.Trainer` expects.

    token_ids: (2b, T) int64; mask: (2b, T) bool, True for the tokens whose log-probability counts.
    """

    token_ids: np.ndarray
    mask: np.ndarray

    @property
    def pairs(self) -> int:
        return self.token_ids.shape[0] // 2


BOUNDARIES = ("answer", "book")


def dpo_collate_fn(batch, pad_token_id: int = 50256, allowed_max_length: int | None = None,
                   mask_prompt_tokens: bool = True, boundary: str = "answer") -> dict:
    """Pad a list of :class:`PreferenceDataset` items into the book's batch dict: ``"prompt"`` (a list
    of id arrays), ``"chosen"``, ``"rejected"`` (b, T) int64 and ``"chosen_mask"``, ``"rejected_mask"``
    (b, T) bool, where T is the longest chosen or rejected sequence plus one (both padded with
    ``pad_token_id``, <|endoftext|>, to the same length), cut to ``allowed_max_length`` columns.

    ``mask[i, t]`` says whether token t of row i counts in the sequence's log-probability (the
    log-probability of token t given tokens 0..t-1; token 0 never counts, nothing predicts it).

    Which tokens count, ``boundary``:

    - ``"answer"`` (the default): the answer's own tokens and the one <|endoftext|> after it. Each
      sequence is ``prompt, "\\n\\n### Response:\\n", answer``. The response header is template, not
      answer: it is the same in both sequences of a pair, after the same prefix, so its tokens have
      the same log-probabilities in the chosen and in the rejected sequence and cancel in the DPO
      margin when log-probabilities are summed; but they do not cancel in the rewards reported one
      by one, and with the per-token average they dilute the margin by a different denominator for
      each answer. The end-of-text token does belong to the answer: whether the model stops is part
      of what it said ("CAT" against "CATS"), and without it a rejected answer that is the beginning
      of the chosen one ("1" against "12") could be pushed down only by pushing down the chosen one.
      Chapter 7's ``custom_collate_fn`` keeps one end-of-text target for the same reason.
    - ``"book"``: the book's notebook, which hides the prompt plus two tokens and counts everything
      else up to the padding. With GPT-2's tokenizer the two tokens are the two newlines, so the
      header's ``"###"``, ``" Response"``, ``":"`` and ``"\\n"`` (four tokens) count as part of the
      answer; the end-of-text token does not count.

    ``mask_prompt_tokens=False`` (as in the book) counts the prompt too: every token before the
    padding (and, with ``boundary="answer"``, the end-of-text token).
    """
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {', '.join(map(repr, BOUNDARIES))}, got {boundary!r}")
    if not len(batch):
        raise ValueError("dpo_collate_fn got an empty batch")
    if allowed_max_length is not None and (isinstance(allowed_max_length, bool)
                                           or not isinstance(allowed_max_length, (int, np.integer))
                                           or allowed_max_length < 2):
        raise ValueError(f"allowed_max_length must be an integer >= 2 or None, got {allowed_max_length!r}")
    for i, item in enumerate(batch):
        if not isinstance(item, dict) or not all(k in item for k in ("prompt", "chosen", "rejected")):
            raise ValueError(f"batch item {i}: expected a PreferenceDataset item (a dict with 'prompt', "
                             "'chosen' and 'rejected' token ids)")
    length = max(len(item[key]) + 1 for item in batch for key in ("chosen", "rejected"))   # T
    out = {"prompt": [np.asarray(item["prompt"], dtype=np.int64) for item in batch]}
    for key in ("chosen", "rejected"):
        ids = np.full((len(batch), length), pad_token_id, dtype=np.int64)      # (b, T)
        mask = np.zeros((len(batch), length), dtype=bool)                      # (b, T)
        for row, item in enumerate(batch):
            seq = item[key]
            n = len(seq)
            ids[row, :n] = seq
            if not mask_prompt_tokens:
                start = 0
            elif boundary == "answer":
                start = int(item.get(f"{key}_start", len(item["prompt"])))
            else:
                start = len(item["prompt"]) + 2          # the book: the prompt and the two newlines
            end = n + 1 if boundary == "answer" else n   # (n + 1: the end-of-text token after the answer)
            mask[row, max(start, 1):end] = True          # (token 0 has no prediction)
        if allowed_max_length is not None:
            ids, mask = ids[:, :allowed_max_length], mask[:, :allowed_max_length]
        out[key], out[f"{key}_mask"] = ids, mask
    return out


def stack_pairs(batch: dict) -> PreferenceBatch:
    """The collated dict as one :class:`PreferenceBatch`: chosen rows, then rejected rows."""
    return PreferenceBatch(np.concatenate([batch["chosen"], batch["rejected"]]),
                           np.concatenate([batch["chosen_mask"], batch["rejected_mask"]]))


# ==================================================================================================
# 3. Log-probabilities of the responses
# ==================================================================================================


def compute_logprobs(logits, labels, selection_mask=None, average: bool = False):
    """The log-probability of each row's selected tokens (the book's ``compute_logprobs``).

    logits: (b, T, V) Tensor, the model's output for ``labels``; labels: (b, T) token ids;
    selection_mask: (b, T) bool, which tokens count (token t is predicted by the logits at t - 1;
    token 0 never counts), by default all of tokens 1..T-1. Returns a (b,) Tensor:
    ``sum_t log softmax(logits[t-1])[labels[t]]`` over the selected t, as in the DPO paper, or
    (``average=True``, the book's notebook) that sum divided by the number of selected tokens.

    Built on the fused cross-entropy (log-softmax and the gather in one node, unselected positions
    given the ignore index), so no (b, T, V) array of log-probabilities is kept for the backward
    beyond the softmax cross-entropy keeps anyway.
    """
    labels = np.asarray(labels)
    b, t = labels.shape
    if tuple(logits.shape[:2]) != (b, t):
        raise ValueError(f"compute_logprobs: logits of shape {tuple(logits.shape)} do not fit labels of shape {(b, t)}")
    selected = np.ones((b, t), dtype=bool) if selection_mask is None else np.asarray(selection_mask, dtype=bool)
    if selected.shape != (b, t):
        raise ValueError(f"compute_logprobs: a selection mask of shape {selected.shape} for labels of shape {(b, t)}")
    targets = np.full((b, t), -100, dtype=np.int64)         # targets[:, t-1] = labels[:, t] where selected
    targets[:, :-1] = np.where(selected[:, 1:], labels[:, 1:], -100)
    token_logps = -mg.cross_entropy(logits, targets, ignore_index=-100, reduction="none")   # (b, T)
    sums = token_logps.sum(axis=-1)                                                       # (b,)
    if not average:
        return sums
    counts = selected[:, 1:].sum(axis=-1)
    if (counts == 0).any():
        raise ValueError(f"compute_logprobs: row {int(np.argmin(counts))} selects no token to average over")
    return sums / counts.astype(logits.dtype)


# ==================================================================================================
# 4. The DPO loss
# ==================================================================================================


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    """log sigmoid(x) = -log(1 + e^-x) = -logaddexp(0, -x), finite for every finite x."""
    return -np.logaddexp(0, -x)


class DPOLoss(Function):
    """loss = mean_i -log sigmoid(z_i), z_i = beta * ((pc_i - rc_i) - (pr_i - rr_i)).

    Inputs: four (b,) arrays of sequence log-probabilities: policy chosen (pc), policy rejected (pr),
    reference chosen (rc), reference rejected (rr). Output: the scalar loss.

    Backward: d/dz (-log sigmoid(z)) = -(1 - sigmoid(z)) = -sigmoid(-z), and dz/dpc = beta, so
    dloss/dpc_i = -beta sigmoid(-z_i) / b; dloss/dpr_i = +beta sigmoid(-z_i) / b; the reference's
    gradients are the opposite ones (+ for rc, - for rr), though the reference is usually frozen.
    """

    def forward(self, pc, pr, rc, rr, beta):
        shapes = {a.shape for a in (pc, pr, rc, rr)}
        if len(shapes) != 1 or len(pc.shape) != 1 or pc.shape[0] == 0:
            raise ValueError("dpo_loss needs four log-probability vectors of the same length (one per pair), "
                             f"got shapes {[a.shape for a in (pc, pr, rc, rr)]}")
        z = beta * ((pc - rc) - (pr - rr))                                   # (b,)
        self.save_for_backward(z)
        self.beta = beta
        return np.asarray(-_log_sigmoid(z).mean(), dtype=pc.dtype)

    def backward(self, grad):
        (z,) = self.saved_tensors
        s = np.exp(_log_sigmoid(-z))                                         # sigmoid(-z), stable
        g = (-self.beta / z.shape[0]) * s * grad                             # dloss/dpc
        return g, -g, -g, g


def _check_beta(beta) -> None:
    """beta must be a finite positive number (a Python or NumPy one, not a bool)."""
    if isinstance(beta, bool) or not isinstance(beta, (int, float, np.floating)) or not np.isfinite(beta) or beta <= 0:
        raise ValueError(f"beta must be a positive number, got {beta!r}")


def dpo_loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps,
             beta: float = 0.1):
    """The DPO loss of a batch of pairs and the rewards (the book's ``compute_dpo_loss``).

    Each argument is a (b,) Tensor or array of sequence log-probabilities (:func:`compute_logprobs`).
    Returns ``(loss, chosen_rewards, rejected_rewards)``: the mean over pairs of
    ``-log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r)))`` as a scalar Tensor (one fused node,
    :class:`DPOLoss`), and the implicit rewards ``beta * (pi_c - ref_c)`` and ``beta * (pi_r - ref_r)``
    as (b,) NumPy arrays (metrics: no graph). The book returns the rewards' means; their difference per
    pair is the margin, positive when the pair is ranked right.
    """
    _check_beta(beta)
    loss = DPOLoss.apply(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps,
                         reference_rejected_logps, beta=float(beta))
    data = [np.asarray(x.data if isinstance(x, mg.Tensor) else x, dtype=np.float64)
            for x in (policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps)]
    pc, pr, rc, rr = data
    return loss, beta * (pc - rc), beta * (pr - rr)


def _sequence_logps(model, batch: PreferenceBatch, average: bool):
    """(2b,) log-probabilities of a PreferenceBatch's rows under ``model``."""
    return compute_logprobs(model(batch.token_ids), batch.token_ids, batch.mask, average=average)


def compute_dpo_loss_batch(batch, policy_model, reference_model, beta: float = 0.1, average: bool = False,
                           reference_logps: np.ndarray | None = None, nll_weight: float = 0.0):
    """The book's ``compute_dpo_loss_batch``: ``(loss, chosen_rewards, rejected_rewards)`` of one batch
    (a :class:`PreferenceBatch`, or the dict of :func:`dpo_collate_fn`).

    The policy runs with a graph (when gradients are enabled); the reference runs without one, once
    (``reference_logps``, (2b,), may be passed when they are already known).
    """
    if isinstance(batch, dict):
        batch = stack_pairs(batch)
    b = batch.pairs
    policy = _sequence_logps(policy_model, batch, average)                         # (2b,) with a graph
    if reference_logps is None:
        with mg.no_grad():
            reference_logps = _sequence_logps(reference_model, batch, average).data  # (2b,), no graph
    reference_logps = np.asarray(reference_logps)
    loss, chosen_rewards, rejected_rewards = dpo_loss(policy[:b], policy[b:], reference_logps[:b],
                                                      reference_logps[b:], beta)
    if nll_weight:
        # beyond the book: + nll_weight * the chosen answers' mean negative log-likelihood per token
        # (as in Pang et al. 2024's "DPO + NLL"; it keeps the chosen answers' probability from falling)
        chosen_logps = policy[:b] if not average else _sequence_logps(policy_model, batch, False)[:b]
        n_tokens = max(int(batch.mask[:b, 1:].sum()), 1)
        loss = loss + chosen_logps.sum() * (-float(nll_weight) / n_tokens)
    return loss, chosen_rewards, rejected_rewards


METRICS = ("loss", "chosen_reward", "rejected_reward", "margin", "accuracy")


def preference_metrics(losses: Sequence[float], chosen_rewards: np.ndarray, rejected_rewards: np.ndarray) -> dict:
    """The evaluation figures from per-batch losses and per-pair rewards: mean loss, mean chosen and
    rejected rewards, mean margin (chosen - rejected) and reward accuracy, ``"accuracy"`` (the share of
    pairs whose margin is positive; a tie, as when the policy is the reference, does not count, so it
    is 0 before the first step: a training figure, not a measure of the model -- for that see
    :func:`preference_accuracy`)."""
    chosen, rejected = np.asarray(chosen_rewards, dtype=np.float64), np.asarray(rejected_rewards, dtype=np.float64)
    if not len(losses) or not chosen.size:
        return {k: float("nan") for k in METRICS}
    margin = chosen - rejected
    return {"loss": float(np.mean(losses)), "chosen_reward": float(chosen.mean()),
            "rejected_reward": float(rejected.mean()), "margin": float(margin.mean()),
            "accuracy": float((margin > 0).mean())}


def preference_accuracy(model, data_loader, average: bool = False) -> float:
    """The share of pairs whose chosen answer ``model`` finds more likely than the rejected one,
    ``log p(chosen) > log p(rejected)`` (summed log-probabilities, or averaged per token), over a
    loader of :class:`PreferenceBatch` es; no reference needed, so it means the same before and after
    training. Without gradients, in eval mode; NaN for an empty loader."""
    right = []
    was_training = model.training
    model.eval()
    try:
        with mg.no_grad():
            for batch in data_loader:
                batch = PreferenceBatch(*batch)
                logps = _sequence_logps(model, batch, average).data
                right.append(logps[:batch.pairs] > logps[batch.pairs:])
    finally:
        model.train(was_training)
    return float(np.concatenate(right).mean()) if right else float("nan")


def compute_dpo_loss_loader(data_loader, policy_model, reference_model, beta: float = 0.1,
                            num_batches: int | None = None, average: bool = False) -> dict:
    """:func:`preference_metrics` over the first ``num_batches`` batches (all by default) of a loader of
    :class:`PreferenceBatch` es, without gradients and in eval mode (the book's
    ``compute_dpo_loss_loader`` returns the loss and the two mean rewards)."""
    from gpt.data import first_batches

    was_training = policy_model.training
    policy_model.eval()
    losses, chosen, rejected = [], [], []
    try:
        with mg.no_grad():
            for batch in first_batches(data_loader, num_batches):
                loss, c, r = compute_dpo_loss_batch(PreferenceBatch(*batch), policy_model, reference_model, beta,
                                                    average)
                losses.append(loss.item())
                chosen.append(c)
                rejected.append(r)
    finally:
        policy_model.train(was_training)
    if not losses:
        return preference_metrics([], [], [])
    return preference_metrics(losses, np.concatenate(chosen), np.concatenate(rejected))


# ==================================================================================================
# 5. Training
# ==================================================================================================


class DPOTrainer(Trainer):
    """:class:`gpt.train.Trainer` (warmup, cosine decay, clipping, bit-exact resuming, stop requests)
    with the DPO loss. The loaders yield :class:`PreferenceBatch` es; ``reference_model`` is frozen
    (no gradients, eval mode) and runs once per batch without a graph.

    Each evaluation computes :func:`preference_metrics` on ``eval_iter`` batches of the training and
    the validation loader; ``history`` holds them (``{"train": {...}, "val": {...}}`` per
    evaluation, in step order) and travels in ``state_dict()``, so a resumed run's log is whole.
    The train and validation losses go to ``state`` as for any Trainer.
    """

    def __init__(self, policy_model, reference_model, optimizer, train_loader, val_loader=None, *,
                 beta: float = 0.1, average_logprobs: bool = False, nll_weight: float = 0.0, **options):
        super().__init__(policy_model, optimizer, train_loader, val_loader, **options)
        _check_beta(beta)
        self.reference_model = reference_model
        reference_model.requires_grad_(False)
        reference_model.eval()
        self.beta, self.average_logprobs, self.nll_weight = float(beta), bool(average_logprobs), float(nll_weight)
        self.history: list[dict] = []

    def compute_loss(self, input_batch, target_batch):
        # The policy runs without dropout, as the reference does: with it, the policy's log-probabilities
        # would sit below the reference's and bias every reward (the book trains chapter 7 with
        # drop_rate 0). Eval mode only switches dropout off; gradients flow as usual.
        was_training = self.model.training
        self.model.eval()
        try:
            loss, _, _ = compute_dpo_loss_batch(PreferenceBatch(input_batch, target_batch), self.model,
                                                self.reference_model, self.beta, self.average_logprobs,
                                                nll_weight=self.nll_weight)
        finally:
            self.model.train(was_training)
        return loss

    def metrics(self, loader) -> dict:
        return compute_dpo_loss_loader(loader or [], self.model, self.reference_model, self.beta,
                                       self.eval_iter, self.average_logprobs)

    def evaluate(self) -> tuple[float, float]:
        train, val = self.metrics(self.train_loader), self.metrics(self.val_loader)
        s = self.state
        has_val = self.val_loader is not None and len(self.val_loader) > 0
        for name, value in (("training", train["loss"]), ("validation", val["loss"] if has_val else 0.0)):
            if not np.isfinite(value):
                raise NonFiniteLossError(f"the {name} loss became {value} when evaluating after step {s.step}; "
                                         "try a lower learning rate or a smaller beta")
        s.train_losses.append(train["loss"])
        s.val_losses.append(val["loss"])
        s.track_tokens_seen.append(s.tokens_seen)
        s.eval_steps.append(s.step)
        self.history.append({"step": s.step, "train": train, "val": val})
        return train["loss"], val["loss"]

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["dpo"] = {"beta": self.beta, "average_logprobs": self.average_logprobs, "nll_weight": self.nll_weight,
                        "history": self.history}
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.history = list(state.get("dpo", {}).get("history", []))


def save_dpo_checkpoint(directory, model, *, tokenizer, optimizer=None, trainer_state: dict | None = None,
                        info: dict | None = None, keep: int = 2) -> Path:
    """:func:`gpt.checkpoint.save_checkpoint` with ``info["task"] = "preference"`` and the LoRA settings
    where :func:`gpt.finetune.instruct.load_instruct_checkpoint` looks for them, so ``chat``,
    ``generate`` and ``--resume`` load the result (LoRA merged on load for generating)."""
    info = dict(info or {})
    info["task"] = "preference"
    info["instruct"] = dict(info.get("instruct") or {}, lora=lora_settings(model))
    return save_checkpoint(directory, model, tokenizer=tokenizer, optimizer=optimizer,
                           trainer_state=trainer_state, info=info, keep=keep)


# ==================================================================================================
# 6. Demo: preference pairs with checkable answers
# ==================================================================================================

#: The kinds of wrong answer the demo makes.
REJECTION_KINDS = ("off_by_one", "wrong_case", "other_task", "misspelt")


def _misspelt(answer: str, rng) -> str:
    """The answer with one letter dropped, doubled, or replaced by another letter of it."""
    i = int(rng.integers(len(answer)))
    how = int(rng.integers(3))
    if how == 0 and len(answer) > 1:
        return answer[:i] + answer[i + 1:]
    if how == 1:
        return answer[:i] + answer[i] + answer[i:]
    others = sorted(set(answer) - {answer[i]})
    return answer[:i] + others[int(rng.integers(len(others)))] + answer[i + 1:] if others else answer + answer[i]


def _number_neighbour(value: int, rng) -> str:
    if value <= 0:
        return str(value + 1)
    return str(value + (1 if rng.random() < 0.5 else -1))


def _rejected_answer(entry: dict, rng) -> tuple[str, str]:
    """(kind, a plausible wrong answer) for one of chapter 7's demo entries."""
    task, word, answer = entry.get("task"), entry["input"], entry["output"]
    options: list[tuple[str, str]] = []
    if task in ("count_letters", "count_words", "add"):
        options.append(("off_by_one", _number_neighbour(int(answer), rng)))
    if task == "upper":
        options += [("wrong_case", word), ("wrong_case", word.capitalize()), ("other_task", word[::-1].upper()),
                    ("misspelt", _misspelt(answer, rng)), ("misspelt", _misspelt(answer, rng))]
    elif task == "reverse":
        options += [("wrong_case", answer.upper()), ("other_task", word), ("other_task", word.upper()),
                    ("misspelt", _misspelt(answer, rng)), ("misspelt", _misspelt(answer, rng))]
    elif task == "count_letters":
        options += [("other_task", word.upper()), ("other_task", word[::-1])]
    elif task == "count_words":
        options += [("other_task", str(sum(len(w) for w in word.split())))]
    if not options or all(wrong == answer for _, wrong in options):
        options = [("off_by_one", answer[:-1] or answer + answer)]
    options = [(k, w) for k, w in options if w != answer]
    return options[int(rng.integers(len(options)))]


def demo_preference_data(entries: Sequence[dict], seed: int = 123, flaws: bool = False) -> list[dict]:
    """Preference pairs from chapter 7's demo entries (:func:`gpt.finetune.instruct.demo_instruction_data`):
    ``chosen`` is the exact answer (``output``, or ``exact`` for an entry with a flawed label), ``rejected``
    a plausible wrong one, drawn with ``seed``: an off-by-one count or sum, the word in the wrong case
    (``lion`` or ``Lion`` for ``LION``; ``NOIL`` for ``noil``), or another task's answer to the same
    input (the word reversed and upper-cased when asked to upper-case it, the word itself when asked to
    reverse it, the word upper-cased when asked to count its letters, the letters of a text when asked
    for its words).

    ``flaws=True``: for the tasks with a systematic flaw (:data:`gpt.finetune.instruct.DEMO_FLAWS`), the
    rejected answer is always the flawed one (``lion`` for ``LION``; one letter too many), the mistake
    a model fine-tuned on :func:`gpt.finetune.instruct.add_demo_flaws`' noisy labels makes; the other
    tasks keep the drawn kinds. Each pair keeps its entry's keys and gains ``"kind"``, the kind of
    wrong answer (:data:`REJECTION_KINDS`)."""
    from gpt.finetune.instruct import DEMO_FLAWS, flawed_answer

    rng = np.random.default_rng(seed)
    pairs = []
    for entry in entries:
        exact = entry.get("exact", entry["output"])
        entry = {k: v for k, v in entry.items() if k not in ("exact", "flaw")}
        entry["output"] = exact
        kind, rejected = _rejected_answer(entry, rng)
        if flaws and entry.get("task") in DEMO_FLAWS:
            kind, rejected = DEMO_FLAWS[entry["task"]][0], flawed_answer(entry)
        pairs.append(dict(entry, chosen=exact, rejected=rejected, kind=kind))
    return pairs
