"""Chapter 7: fine-tuning a GPT to follow instructions.

The pieces, in the book's order:

1. Data (7.2). A JSON list of ``{"instruction", "input", "output"}`` entries (the Alpaca format):
   :func:`load_instruction_data` reads and checks one; :func:`format_input` writes an entry as the
   book's prompt and :func:`format_response` its answer part; :func:`split_instruction_data` cuts the
   list in file order: 85 % train, 10 % test, the rest validation (935 / 110 / 55 of the book's 1,100).
2. Batches (7.3). :class:`InstructionDataset` encodes every prompt + response once;
   :func:`custom_collate_fn` pads a batch with <|endoftext|>, shifts it into inputs and targets and
   replaces the padding targets by -100, which cross-entropy ignores -- all but the first, so the
   model learns to end its answer. ``mask_prompt=True`` also hides the prompt (exercise 7.2).
3. Training (7.5). The chapter-5 machinery as it is: :func:`gpt.train.calc_loss_batch` averages over
   the targets that are not -100, and :class:`gpt.train.Trainer` gives the resumable loop.
   :func:`add_lora` (appendix E) and :func:`save_instruct_checkpoint` /
   :func:`load_instruct_checkpoint` keep LoRA layers working across a checkpoint.
4. Responses (7.6). :func:`generate_response` greedily continues the prompt until <|endoftext|> and
   keeps only the answer; :func:`generate_responses` does a whole held-out set in batches, and
   :func:`write_responses` saves it as the book's ``*-with-response.json``.
5. Beyond the book: a demo data set the project makes itself (:func:`demo_instruction_data`: upper-
   casing, reversing, counting letters or words, adding small numbers) whose answers can be checked
   exactly (:func:`exact_match_accuracy`) instead of by asking a larger model to grade them (7.8).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import numpy as np

from gpt.atomic import write_text_atomic
from gpt.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from gpt.finetune.classify import read_text_file
from gpt.finetune.lora import LinearWithLoRA, add_lora, lora_settings, merge_lora
from gpt.generate import encode_as_text, generate

__all__ = [
    "PREAMBLE", "RESPONSE_HEADER", "load_instruction_data", "check_instruction_data", "format_input",
    "format_response", "InstructionSplit", "split_instruction_data", "InstructionDataset", "custom_collate_fn",
    "add_lora", "save_instruct_checkpoint", "load_instruct_checkpoint", "extract_response", "generate_response",
    "generate_responses", "responses_path", "write_responses", "DEMO_TASKS", "DEMO_WORDS", "demo_instruction_data",
    "demo_tokenizer", "exact_match", "exact_match_accuracy", "DEMO_FLAWS", "flawed_answer", "add_demo_flaws",
]

# ==================================================================================================
# 1. Data
# ==================================================================================================

PREAMBLE = ("Below is an instruction that describes a task. "
            "Write a response that appropriately completes the request.")
RESPONSE_HEADER = "\n\n### Response:\n"


def check_entries(entries, source: str = "the data", answers: tuple[str, ...] = ("output",),
                  kind: str = "an entry") -> list[dict]:
    """Check that ``entries`` is a list of dicts with string ``instruction``, ``input`` and ``answers``
    fields (chapter 7's ``output``; DPO's ``chosen`` and ``rejected``) and return it with a missing
    ``input`` filled in as "" (other keys are kept as they are).

    Anything else is a ValueError naming the entry by its index: ``source: entry 12: ...``.
    """
    keys = ("instruction", "input", *answers)
    listed = ", ".join(repr(k) for k in keys[:-1]) + f" and {keys[-1]!r}"
    if not isinstance(entries, list):
        raise ValueError(f"{source}: expected a JSON list of {{{', '.join(keys)}}} entries, "
                         f"got a {type(entries).__name__}")
    checked = []
    for i, entry in enumerate(entries):
        where = f"{source}: entry {i}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected an object with {listed}, got a {type(entry).__name__}")
        for key in ("instruction", *answers):
            if key not in entry:
                raise ValueError(f"{where}: missing {key!r} ({kind} needs {listed})")
        entry = dict(entry)
        entry.setdefault("input", "")
        for key in keys:
            if not isinstance(entry[key], str):
                raise ValueError(f"{where}: {key!r} must be a string, got {type(entry[key]).__name__}")
        if not entry["instruction"].strip():
            raise ValueError(f"{where}: the instruction is empty")
        checked.append(entry)
    return checked


def check_instruction_data(entries, source: str = "the data") -> list[dict]:
    """Check chapter 7's ``{"instruction", "input", "output"}`` entries (see :func:`check_entries`)."""
    return check_entries(entries, source)


def load_instruction_data(path: str | os.PathLike) -> list[dict]:
    """Read a JSON file holding a list of instruction entries (the book's ``instruction-data.json``).

    Raises FileNotFoundError, or ValueError naming the file and what is wrong: empty (also a device
    such as /dev/null that reads empty), a folder, not UTF-8, not JSON, or a bad entry (its index).
    """
    return load_entries(path)


def load_entries(path: str | os.PathLike, answers: tuple[str, ...] = ("output",), kind: str = "an entry") -> list[dict]:
    """A JSON file's list of entries, checked by :func:`check_entries` (``answers``: the answer keys)."""
    path = Path(path)
    text = read_text_file(path)
    if not text.strip():
        raise ValueError(f"{path}: the file is empty (only whitespace); expected a JSON list of entries")
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    return check_entries(entries, str(path), answers=answers, kind=kind)


def format_input(entry: dict, preamble: str = PREAMBLE) -> str:
    """The book's Alpaca-style prompt: the preamble, the instruction and, only when it is not empty,
    the input (``preamble`` replaces the book's first sentence; :mod:`gpt.chat` passes a system
    message there)::

        Below is an instruction that describes a task. Write a response that appropriately completes the request.

        ### Instruction:
        Convert the word to upper case.

        ### Input:
        cat
    """
    instruction_text = f"{preamble}\n\n### Instruction:\n{entry['instruction']}"
    input_text = f"\n\n### Input:\n{entry['input']}" if entry.get("input") else ""
    return instruction_text + input_text


def format_response(entry: dict) -> str:
    """What follows the prompt in training: ``"\\n\\n### Response:\\n" + output``."""
    return RESPONSE_HEADER + entry["output"]


class InstructionSplit(NamedTuple):
    """The three parts of a data set, in the order they come in the file: train, test, validation."""

    train: list
    test: list
    val: list


def split_instruction_data(data: Sequence, train_frac: float = 0.85, test_frac: float = 0.10) -> InstructionSplit:
    """Cut ``data`` in file order, as the book does (no shuffling): the first ``int(n * train_frac)``
    entries train, the next ``int(n * test_frac)`` test, the rest validate. Unpacks as
    ``train_data, test_data, val_data``."""
    for name, frac in (("train_frac", train_frac), ("test_frac", test_frac)):
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 <= frac <= 1:
            raise ValueError(f"{name} must be a number between 0 and 1, got {frac!r}")
    if train_frac + test_frac > 1 + 1e-12:
        raise ValueError(f"train_frac + test_frac must be at most 1, got {train_frac} + {test_frac}")
    data = list(data)
    train_portion = int(len(data) * train_frac)
    test_portion = int(len(data) * test_frac)
    return InstructionSplit(data[:train_portion], data[train_portion:train_portion + test_portion],
                            data[train_portion + test_portion:])


# ==================================================================================================
# 2. Batches
# ==================================================================================================



class InstructionDataset:
    """Every entry encoded once as prompt + response (the book's ``InstructionDataset``).

    ``dataset[i]`` is the list of token ids of ``format_input(entry) + format_response(entry)``, as in
    the book. With ``return_prompt_length=True`` it is the pair ``(token_ids, prompt_length)`` instead,
    which :func:`custom_collate_fn` needs to mask the prompt (``mask_prompt=True``).

    Attributes:
        encoded_texts: one list of ids per entry.
        prompt_lengths: how many of its first ids encode the prompt alone. (Encoding the prompt on its
            own gives the same ids as the start of the whole text unless the tokenizer merges across
            the boundary; then it is the length of the common start.)
    """

    def __init__(self, data: Sequence[dict], tokenizer, return_prompt_length: bool = False):
        self.data = list(data)
        self.return_prompt_length = bool(return_prompt_length)
        self.encoded_texts: list[list[int]] = []
        self.prompt_lengths: list[int] = []
        for entry in self.data:
            instruction_plus_input = format_input(entry)
            full_text = instruction_plus_input + format_response(entry)
            ids = encode_as_text(tokenizer, full_text)
            prompt = encode_as_text(tokenizer, instruction_plus_input)
            n = 0
            for a, b in zip(prompt, ids):
                if a != b:
                    break
                n += 1
            self.encoded_texts.append(ids)
            self.prompt_lengths.append(n)

    def __len__(self) -> int:
        return len(self.encoded_texts)

    def __getitem__(self, index: int):
        if self.return_prompt_length:
            return self.encoded_texts[index], self.prompt_lengths[index]
        return self.encoded_texts[index]


def _batch_item(item, i: int, mask_prompt: bool) -> tuple[list, int]:
    """(token ids, prompt length or 0) from a batch item: a sequence of ids, or (ids, prompt_length)."""
    prompt_length = 0
    if isinstance(item, tuple) and len(item) == 2 and not np.isscalar(item[0]):
        item, prompt_length = item
        if isinstance(prompt_length, bool) or not isinstance(prompt_length, (int, np.integer)) or prompt_length < 0:
            raise ValueError(f"batch item {i}: the prompt length must be a non-negative integer, got {prompt_length!r}")
    elif mask_prompt:
        raise ValueError("mask_prompt=True needs (token_ids, prompt_length) batch items; build the dataset "
                         "with InstructionDataset(..., return_prompt_length=True)")
    ids = np.asarray(item)
    if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):
        raise ValueError(f"batch item {i}: expected a 1-D sequence of token ids, got shape {ids.shape} "
                         f"of {ids.dtype}")
    if ids.size == 0:
        raise ValueError(f"batch item {i} has no tokens")
    if prompt_length > ids.size:
        raise ValueError(f"batch item {i}: the prompt length {prompt_length} is longer than its {ids.size} tokens")
    return ids.astype(np.int64), int(prompt_length)


def custom_collate_fn(batch, pad_token_id: int = 50256, ignore_index: int = -100,
                      allowed_max_length: int | None = None, mask_prompt: bool = False
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Turn a list of token-id sequences into ``(inputs, targets)``, int64 arrays (b, T), the book's way.

    For a batch whose longest item has ``T`` tokens, each item of ``n`` tokens becomes::

        padded  = item + [pad] + [pad] * (T - n)          (T + 1 ids: one <|endoftext|>, then padding)
        inputs  = padded[:-1]                              (T ids)
        targets = padded[1:] with the padding after the first <|endoftext|> set to ignore_index

    so each row keeps exactly one end-of-text target (position n - 1: "stop here"), and cross-entropy
    skips the rest. ``allowed_max_length`` then cuts both arrays to that many columns.

    ``mask_prompt`` (the book's exercise 7.2): items are ``(token_ids, prompt_length)`` pairs, and the
    targets that are prompt tokens (the first ``prompt_length - 1``) are set to ``ignore_index`` too,
    so only the response (and its end) is learned. Without it, items may be pairs or plain sequences.

    The book finds the padding by comparing with ``pad_token_id``; here it is found by position, which
    is the same unless the text itself contains that id.
    """
    items = [_batch_item(item, i, mask_prompt) for i, item in enumerate(batch)]
    if not items:
        raise ValueError("custom_collate_fn got an empty batch")
    if allowed_max_length is not None and (isinstance(allowed_max_length, bool)
                                           or not isinstance(allowed_max_length, (int, np.integer))
                                           or allowed_max_length < 1):
        raise ValueError(f"allowed_max_length must be a positive integer or None, got {allowed_max_length!r}")
    batch_max_length = max(len(ids) + 1 for ids, _ in items)          # T + 1
    inputs = np.full((len(items), batch_max_length - 1), pad_token_id, dtype=np.int64)   # (b, T)
    targets = np.full((len(items), batch_max_length - 1), ignore_index, dtype=np.int64)  # (b, T)
    for row, (ids, prompt_length) in enumerate(items):
        n = len(ids)
        inputs[row, :n] = ids
        targets[row, :n - 1] = ids[1:]
        targets[row, n - 1] = pad_token_id            # the one end-of-text target; padding after it stays ignored
        if mask_prompt:
            targets[row, :max(prompt_length - 1, 0)] = ignore_index
    if allowed_max_length is not None:
        inputs = inputs[:, :allowed_max_length]
        targets = targets[:, :allowed_max_length]
    return inputs, targets


# ==================================================================================================
# 3. Training: LoRA and checkpoints
# ==================================================================================================



def save_instruct_checkpoint(directory, model, *, tokenizer, optimizer=None, trainer_state: dict | None = None,
                             info: dict | None = None, keep: int = 2) -> Path:
    """:func:`gpt.checkpoint.save_checkpoint` (atomic, ``latest``, pruning) with
    ``info["instruct"]["lora"]`` recording the LoRA rank and alpha, if the model has LoRA layers, so
    that :func:`load_instruct_checkpoint` can rebuild them."""
    info = dict(info or {})
    info["task"] = "instruction"
    info["instruct"] = dict(info.get("instruct") or {}, lora=lora_settings(model))
    return save_checkpoint(directory, model, tokenizer=tokenizer, optimizer=optimizer,
                           trainer_state=trainer_state, info=info, keep=keep)


def load_instruct_checkpoint(directory, *, load_training_state: bool = False, merge: bool = False):
    """Read a checkpoint; if :func:`save_instruct_checkpoint` recorded LoRA layers, the model gets them
    (trainable, the rest frozen) before its weights are loaded. ``merge=True`` folds them back into
    plain Linear weights afterwards (same outputs, faster; for generating). Any other checkpoint
    (``python -m gpt pretrain``'s) loads as it is. Returns a :class:`gpt.checkpoint.Checkpoint`;
    raises :class:`~gpt.checkpoint.CheckpointError`."""
    def prepare(model, info: dict) -> None:
        if getattr(model.cfg, "arch", None) == "bert":
            raise CheckpointError(f"{directory}: is a BERT encoder pretrained as a masked language model; it does "
                                  "not generate text (use it with 'python -m gpt experiment retrieval --mlm-checkpoint')")
        if not isinstance(info, dict):
            return
        if info.get("task") == "classification":
            raise CheckpointError(f"{directory}: is a classifier (its output layer gives classes, not tokens); "
                                  "use 'python -m gpt classify', or start from a language model")
        instruct = info.get("instruct")
        lora = instruct.get("lora") if isinstance(instruct, dict) else None
        if not lora:
            return
        try:
            add_lora(model, int(lora["rank"]), lora["alpha"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{directory}: the LoRA settings in config.json are damaged ({e})") from None

    ck = load_checkpoint(directory, load_training_state=load_training_state, prepare=prepare)
    if merge and any(isinstance(m, LinearWithLoRA) for m in ck.model.modules()):
        merge_lora(ck.model)
    return ck


# ==================================================================================================
# 4. Responses
# ==================================================================================================


def extract_response(generated_text: str, prompt: str | None = None) -> str:
    """The answer in a generated text: the prompt (if the text starts with it) and the leading
    ``### Response:`` header removed, surrounding whitespace stripped. (The book replaces every
    "### Response:" in the text; only the header at the start is removed here.)"""
    text = generated_text[len(prompt):] if prompt is not None and generated_text.startswith(prompt) else generated_text
    text = text.strip()
    header = RESPONSE_HEADER.strip()
    if text.startswith(header):
        text = text[len(header):]
    return text.strip()


def _eos_id(tokenizer, eos_id: int | None) -> int | None:
    if eos_id is not None:
        return int(eos_id)
    special = getattr(tokenizer, "special_tokens", None)
    if isinstance(special, dict) and "<|endoftext|>" in special:
        return int(special["<|endoftext|>"])
    return None


def generate_responses(model, tokenizer, entries: Sequence[dict], max_new_tokens: int = 256,
                       batch_size: int = 16, eos_id: int | None = None,
                       on_progress: Callable[[int, int], None] | None = None) -> list[str]:
    """The model's answer to each entry: greedy decoding of ``format_input(entry)`` until
    <|endoftext|> (``eos_id``, by default the tokenizer's) or ``max_new_tokens``, with the prompt and
    the ``### Response:`` header removed (:func:`extract_response`).

    Prompts of the same token length run together as one batch (up to ``batch_size``), which gives
    exactly the answers one at a time would, as no padding is involved. ``on_progress(done, total)``
    is called after each batch.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    eos = _eos_id(tokenizer, eos_id)
    context = model.cfg.context_length
    prompts = [encode_as_text(tokenizer, format_input(entry))[-context:] for entry in entries]
    groups: dict[int, list[int]] = {}
    for i, ids in enumerate(prompts):
        groups.setdefault(len(ids), []).append(i)
    responses: list[str] = [""] * len(entries)
    done = 0
    for length, members in sorted(groups.items()):
        for start in range(0, len(members), batch_size):
            chunk = members[start:start + batch_size]
            idx = np.array([prompts[i] for i in chunk], dtype=np.int64)            # (b, length)
            out = generate(model, idx, max_new_tokens, context_size=context, temperature=0.0, eos_id=eos)
            for row, i in enumerate(chunk):
                new = out[row, length:].tolist()
                if eos is not None and eos in new:
                    new = new[:new.index(eos)]
                responses[i] = extract_response(tokenizer.decode(new))
            done += len(chunk)
            if on_progress is not None:
                on_progress(done, len(entries))
    return responses


def generate_response(model, tokenizer, entry: dict | str, max_new_tokens: int = 256,
                      eos_id: int | None = None) -> str:
    """The model's answer to one entry (or to an instruction given as a string), as
    :func:`generate_responses`."""
    if isinstance(entry, str):
        entry = {"instruction": entry, "input": ""}
    return generate_responses(model, tokenizer, [entry], max_new_tokens, eos_id=eos_id)[0]


def responses_path(data_path: str | os.PathLike) -> Path:
    """Where the responses to ``data_path`` go: ``name-with-response.json`` next to it (the book's
    ``instruction-data-with-response.json``)."""
    data_path = Path(data_path)
    return data_path.with_name(f"{data_path.stem}-with-response.json")


def write_responses(entries: Sequence[dict], responses: Sequence[str], path: str | os.PathLike) -> Path:
    """Write ``entries`` with a ``"model_response"`` key added to each, as indented JSON, atomically
    (:mod:`gpt.atomic`: the file is either the old one or complete). Returns the path."""
    if len(entries) != len(responses):
        raise ValueError(f"{len(entries)} entries but {len(responses)} responses")
    path = Path(path)
    records = [dict(entry, model_response=response) for entry, response in zip(entries, responses)]
    write_text_atomic(path, json.dumps(records, indent=4, ensure_ascii=False) + "\n")
    return path


# ==================================================================================================
# 5. A demo data set with answers that can be checked
# ==================================================================================================

#: Short, common English words: the material of the demo's word tasks.
DEMO_WORDS = (
    "ant arm bag bed bee box bus cake cap car cat cow cup day dog door duck ear egg eye farm fish "
    "flag fox frog game gift girl goat hand hat hill home horn jam kite lamp leg lion map milk moon "
    "nest net nose owl pan park pen pig pot rain ring road rock roof rope sand ship shoe sock star "
    "sun tent tree toy van vase web wind wolf yard zoo apple bread chair cloud dream earth field "
    "glass grass heart house juice light money music night ocean paper plant queen river sheep smile "
    "snake stone table tiger train water whale world zebra bell bird boat bone book bowl cart coat "
    "corn crab desk dish drum fan fork gate gold hen hook ice ink jar key king lake leaf lock mask "
    "mice mud nail nut oak oil pear pie pin rat rice rug salt seal seed sink snow soap sofa soup tail "
    "toe town tub vest wall well wing wire yarn baby band barn bear beef belt bike cage city clay "
    "cone crow deer dirt doll dust fire foam frost fruit goose hair hive horse iron lemon mango melon "
    "mouse nurse onion peach pearl piano pizza plate robot salad shirt skirt sugar sword teeth thumb "
    "towel truck wheat"
).split()

#: The demo's instructions ("{a}" and "{b}" stand for numbers).
UPPER, REVERSE = "Convert the word to upper case.", "Write the word backwards."
COUNT_LETTERS, COUNT_WORDS = "How many letters are in this word?", "Count the words in the text."
ADD, ADD_INLINE = "Add the two numbers.", "What is {a} plus {b}?"


def _word(rng) -> str:
    return DEMO_WORDS[rng.integers(len(DEMO_WORDS))]


def _demo_upper(rng) -> tuple[str, str, str]:
    word = _word(rng)
    return UPPER, word, word.upper()


def _demo_reverse(rng) -> tuple[str, str, str]:
    word = _word(rng)
    return REVERSE, word, word[::-1]


def _demo_count_letters(rng) -> tuple[str, str, str]:
    word = _word(rng)
    return COUNT_LETTERS, word, str(len(word))


def _demo_count_words(rng) -> tuple[str, str, str]:
    n = int(rng.integers(1, 7))
    return COUNT_WORDS, " ".join(_word(rng) for _ in range(n)), str(n)


def _demo_add(rng) -> tuple[str, str, str]:
    a, b = (int(x) for x in rng.integers(0, 10, size=2))
    if rng.random() < 0.5:                     # with and without an input part, as in the book's data
        return ADD_INLINE.format(a=a, b=b), "", str(a + b)
    return ADD, f"{a} + {b}", str(a + b)


#: The demo's tasks: name -> function(rng) returning (instruction, input, output).
DEMO_TASKS: dict[str, Callable] = {
    "upper": _demo_upper,
    "reverse": _demo_reverse,
    "count_letters": _demo_count_letters,
    "count_words": _demo_count_words,
    "add": _demo_add,
}


def demo_instruction_data(n: int = 1000, seed: int = 123, tasks: Sequence[str] | None = None) -> list[dict]:
    """``n`` distinct instruction entries from the :data:`DEMO_TASKS` (all of them, or ``tasks``),
    shuffled, each with a ``"task"`` key naming its task.

    The tasks take turns, so each gets an equal share, until one runs out of new questions (the word
    tasks have one per word of :data:`DEMO_WORDS`, 210; adding has 200); the others then fill the
    rest. Every (instruction, input) pair occurs once, so the test part of a split asks questions
    the training part never answered. The same ``seed`` gives the same list; a ValueError if ``n``
    is more than the tasks can make.
    """
    tasks = list(DEMO_TASKS) if tasks is None else list(tasks)
    unknown = [t for t in tasks if t not in DEMO_TASKS]
    if unknown or not tasks:
        raise ValueError(f"unknown demo task(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
                         f"choose from: {', '.join(DEMO_TASKS)}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    rng = np.random.default_rng(seed)
    entries, seen, exhausted = [], set(), set()
    while len(entries) < n:
        open_tasks = [t for t in tasks if t not in exhausted]
        if not open_tasks:
            raise ValueError(f"cannot make {n} distinct demo entries from the tasks {', '.join(tasks)} "
                             f"(they ran out after {len(entries)}); ask for fewer")
        task = open_tasks[len(entries) % len(open_tasks)]
        for _ in range(1000):                  # draw until a question not asked yet comes up
            instruction, input_text, output = DEMO_TASKS[task](rng)
            if (instruction, input_text) not in seen:
                break
        else:
            exhausted.add(task)                # (almost) every question of this task is taken
            continue
        seen.add((instruction, input_text))
        entries.append({"instruction": instruction, "input": input_text, "output": output, "task": task})
    order = rng.permutation(len(entries))
    return [entries[i] for i in order]


#: Systematic flaws of the demo's answers: task -> (kind of wrong answer, what the flawed answer is).
#: Upper-casing answered with the word left in lower case; counting letters answered one too high.
DEMO_FLAWS: dict[str, tuple[str, str]] = {
    "upper": ("wrong_case", "the word left in lower case"),
    "count_letters": ("off_by_one", "one letter too many"),
}


def flawed_answer(entry: dict) -> str | None:
    """The answer with its task's systematic flaw (:data:`DEMO_FLAWS`), or None if its task has none."""
    task, word = entry.get("task"), entry["input"]
    if task == "upper":
        return word.lower()
    if task == "count_letters":
        return str(len(word) + 1)
    return None


def add_demo_flaws(entries: Sequence[dict], share: float, seed: int = 123) -> list[dict]:
    """Noisy labels, as real instruction data has: a copy of ``entries`` in which each answer of a task
    with a systematic flaw (:data:`DEMO_FLAWS`) is, with probability ``share`` (seeded), replaced by
    the flawed one (``LION`` -> ``lion``; ``4`` letters -> ``5``). A model fine-tuned on it learns the
    flaw as far as the labels teach it: above a share of 0.5 its greedy answers to those tasks are
    mostly the flawed ones. Flawed entries gain ``"flaw"`` (the kind of wrong answer) and
    ``"exact"`` (the correct answer); the others are unchanged."""
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
        raise ValueError(f"share must be a number between 0 and 1, got {share!r}")
    rng = np.random.default_rng(seed)
    out = []
    for entry in entries:
        flawed = flawed_answer(entry)
        if flawed is not None and rng.random() < share and flawed != entry["output"]:
            entry = dict(entry, output=flawed, exact=entry["output"], flaw=DEMO_FLAWS[entry["task"]][0])
        out.append(entry)
    return out


def demo_tokenizer():
    """The demo's vocabulary: the 256 bytes, one token for each word of the prompt template and the
    demo's instructions, and <|endoftext|>.

    Each template word gets its token through merges that grow it from its first character, one
    character at a time (" w", " wo", " wor", " word"), so every merge starts with a space, a capital
    or a punctuation mark. The lowercase words the tasks are about therefore stay spelled out in
    single letters (" lion" is " l", "i", "o", "n"): a tiny model can upper-case or reverse a word
    only if it sees its letters, while the 40-odd words of the fixed template cost a token each.
    (GPT-2's 50,257 tokens would make a tiny model's output layer its largest part; a vocabulary
    trained by BPE on the demo data merges the task words into pieces.)
    """
    from gpt.tokenizer import BPETokenizer
    from gpt.tokenizer.pretokenize import GPT2_PATTERN, Splitter

    instructions = (UPPER, REVERSE, COUNT_LETTERS, COUNT_WORDS, ADD, ADD_INLINE.format(a=0, b=0))
    texts = [format_input({"instruction": i, "input": "x"}) + RESPONSE_HEADER for i in instructions]
    ids = {bytes([b]): b for b in range(256)}            # token bytes -> id
    merges: list[tuple[int, int]] = []
    for text in texts:
        for piece in Splitter(GPT2_PATTERN).split(text):
            if any(c.isdigit() for c in piece):
                continue
            word = piece.encode("utf-8")
            for k in range(2, len(word) + 1):            # word[:k] = word[:k-1] + one more byte
                if word[:k] not in ids:
                    ids[word[:k]] = 256 + len(merges)
                    merges.append((ids[word[:k - 1]], ids[word[k - 1:k]]))
    return BPETokenizer(merges, {"<|endoftext|>": 256 + len(merges)})


def exact_match(response: str, expected: str) -> bool:
    """Whether a response is the expected answer, ignoring surrounding whitespace."""
    return response.strip() == expected.strip()


def exact_match_accuracy(entries: Sequence[dict], responses: Sequence[str] | None = None,
                         by_task: bool = False):
    """Fraction of ``entries`` whose response matches ``output`` exactly (:func:`exact_match`); the
    responses are ``responses`` or each entry's ``"model_response"``. With ``by_task=True``: a dict
    task -> accuracy as well (entries without a ``"task"`` key count as task "all"), returned as
    ``(accuracy, per_task)``. NaN for no entries."""
    if responses is None:
        responses = [e.get("model_response", "") for e in entries]
    if len(entries) != len(responses):
        raise ValueError(f"{len(entries)} entries but {len(responses)} responses")
    hits = [exact_match(r, e["output"]) for e, r in zip(entries, responses)]
    overall = sum(hits) / len(hits) if hits else float("nan")
    if not by_task:
        return overall
    per_task: dict[str, list[bool]] = {}
    for e, hit in zip(entries, hits):
        per_task.setdefault(e.get("task", "all"), []).append(hit)
    return overall, {t: sum(h) / len(h) for t, h in per_task.items()}
