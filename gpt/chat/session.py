"""A multi-turn conversation with a model that keeps its KV cache between turns (beyond the book).

:class:`ChatSession` holds the conversation as token ids, exactly as the model saw and wrote them:
the first turn is the template's text for the system message and the first user message; each
answer is the ids the model generated (with the stop token that ended it, when the template writes
that token there); each later turn appends the template's text for "end of that answer, the next
user message, the start of the assistant's turn" (:meth:`ChatStyle.next_turn`). The model's KV
cache holds those ids, so a new turn only runs the model over the tokens that are not cached yet:
the new message and the few marker tokens around it. The previous answer is never read twice.

Because every turn rebuilds the ids of the whole conversation and keeps the longest cached prefix,
the same rule covers everything else: a new system message re-reads the conversation from there;
``reset`` keeps the cached system prompt; a style that holds one exchange (the book's alpaca)
reuses the cached preamble; and when the conversation outgrows the context, the oldest turns are
dropped and the rest read again.

(Since answers are kept as the model wrote them, the text can differ from the template's rendering
of the same messages where a template rewrites history: Qwen3's drops the ``<think>`` block of
earlier answers and Llama's and Gemma's trim them. Rewriting them would mean reading every earlier
answer again at each turn.)
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

import minigrad as mg
from gpt.chat.templates import ChatStyle, get_style
from gpt.generate import _encode_takes, sample_next

__all__ = ["ChatSession", "ContextFullError", "TurnStats", "TextStream", "token_id", "stop_token_ids", "encode_chat"]

#: The longest conversation the cache holds by default (a model's own context can be far longer).
DEFAULT_CONTEXT = 4096


class ContextFullError(ValueError):
    """A message that does not fit in the context even with every earlier turn dropped."""


# ---------------------------------------------------------------------- the tokenizer, as a chat uses it
def encode_chat(tokenizer, text: str, special_markers: bool = True) -> list[int]:
    """Ids of a chat template's text: its special-token markers (``<|im_start|>``) as special
    tokens, and no beginning-of-text token added (the template writes its own). With
    ``special_markers=False`` every character is ordinary text (the alpaca style).

    (As with ``transformers``, a special token written inside a message counts as one too.)"""
    options = {}
    if special_markers and _encode_takes(tokenizer, "allowed_special"):
        options["allowed_special"] = "all"
    elif not special_markers and _encode_takes(tokenizer, "disallowed_special"):
        options["disallowed_special"] = ()
    if _encode_takes(tokenizer, "add_special_tokens"):
        options["add_special_tokens"] = False
    return list(tokenizer.encode(text, **options))


def token_id(tokenizer, token: str) -> int | None:
    """The id of a (special) token's string, or None if the vocabulary has none."""
    if hasattr(tokenizer, "token_to_id"):
        try:
            found = tokenizer.token_to_id(token)
        except (KeyError, ValueError):
            return None
        return None if found is None else int(found)
    special = getattr(tokenizer, "special_tokens", None)
    if isinstance(special, dict) and token in special:
        return int(special[token])
    return None


def stop_token_ids(style: str | ChatStyle, tokenizer, extra: Sequence[int] = ()) -> list[int]:
    """The ids of the style's stop tokens that the vocabulary has, then ``extra`` (e.g. a model
    folder's ``eos_token_id``), without repeats."""
    found = [token_id(tokenizer, t) for t in get_style(style).stop_tokens]
    ids: list[int] = []
    for i in [*found, *extra]:
        if i is not None and int(i) not in ids:
            ids.append(int(i))
    return ids


class TextStream:
    """Token ids in, text pieces out, ready to print as each id arrives.

    A character can span several tokens (an emoji is 4 bytes, often 2-4 byte-level tokens) and some
    decoders treat the first token of a text differently (a SentencePiece "▁" is a space only
    inside a text), so ids are not decoded one by one: each new id decodes a short window (the ids
    since the piece before last) and what the window gained is the new piece. A window whose text
    ends in an unfinished character (U+FFFD) waits for the next id; :meth:`flush` gives the rest.
    """

    def __init__(self, tokenizer):
        self.decode = tokenizer.decode
        self.ids: list[int] = []
        self._start = 0     # the window's first id: the start of the last piece given out
        self._shown = 0     # ids already turned into pieces

    def _gain(self) -> str:
        before = self.decode(self.ids[self._start:self._shown])
        after = self.decode(self.ids[self._start:])
        return after[len(before):] if len(after) > len(before) else ""

    def push(self, token: int) -> str:
        self.ids.append(int(token))
        window = self.decode(self.ids[self._start:])
        if window.endswith("\ufffd"):
            return ""
        piece = self._gain()
        if piece:
            self._start, self._shown = self._shown, len(self.ids)
        return piece

    def flush(self) -> str:
        piece = self._gain()
        self._start = self._shown = len(self.ids)
        return piece


# ---------------------------------------------------------------------- the conversation
@dataclass
class TurnStats:
    """What one answer cost. ``prefill``: the new tokens of the conversation read in one forward
    pass; ``decode``: the answer, one token per pass (the stop token counts)."""

    prefill_tokens: int = 0
    prefill_seconds: float = 0.0
    reused_tokens: int = 0      # tokens of the conversation that were already in the cache
    decode_tokens: int = 0
    decode_seconds: float = 0.0
    dropped_turns: int = 0      # oldest turns forgotten to make room
    stop: str = ""              # "stop token", "length" (max_new_tokens), "context" (full) or "interrupted"

    @staticmethod
    def _rate(tokens: int, seconds: float) -> float:
        return tokens / seconds if seconds > 0 else float("nan")

    @property
    def prefill_rate(self) -> float:
        """Prefill tokens per second."""
        return self._rate(self.prefill_tokens, self.prefill_seconds)

    @property
    def decode_rate(self) -> float:
        """Answer tokens per second."""
        return self._rate(self.decode_tokens, self.decode_seconds)


@dataclass
class Turn:
    """One exchange: the user's message (a dict as the templates take it) and the model's answer."""

    message: dict
    answer: str = ""
    answer_ids: list[int] = field(default_factory=list)
    stop_id: int | None = None


class ChatSession:
    """A conversation with ``model`` (any causal LM of the project: ``model(ids, kv_cache=...,
    last_only=True)``, ``model.new_kv_cache``) in a chat ``style``.

    ``send(text)`` returns an iterator of text pieces of the answer, produced as the model writes
    them; iterate it to the end (or ``close()`` it, which an interrupted ``for`` loop over
    ``contextlib.closing(...)`` does): the answer so far then joins the conversation and
    :attr:`last_stats` says what it cost.

    Args:
        model, tokenizer: the model and its tokenizer (BPETokenizer, HFTokenizer).
        style: a style name or :class:`ChatStyle`; ``options`` its template options
            (e.g. ``{"enable_thinking": False}``).
        system: the system message, or None.
        temperature, top_k, top_p: sampling, as :func:`gpt.generate.generate` (0: greedy). They
            may be changed between turns.
        seed: seeds the sampling generator (one draw per generated token).
        max_new_tokens: the longest answer.
        stop_ids: ids that end an answer (default: the style's stop tokens in this vocabulary).
        context_length: the longest conversation kept, in tokens (default: the model's context
            length, at most :data:`DEFAULT_CONTEXT`); the KV cache is made this long.
    """

    def __init__(self, model, tokenizer, style: str | ChatStyle = "chatml", *, options: dict | None = None,
                 system: str | None = None, temperature: float = 0.0, top_k: int | None = None,
                 top_p: float | None = None, seed: int | None = None, max_new_tokens: int = 256,
                 stop_ids: Sequence[int] | None = None, context_length: int | None = None):
        self.model, self.tokenizer = model, tokenizer
        self.style = get_style(style)
        self.options = dict(options or {})
        self.style.check_options(self.options)
        self.system = system
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p
        self.check_sampling()
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        self.max_new_tokens = max_new_tokens
        self.rng = np.random.default_rng(seed)
        self.stop_ids = list(stop_token_ids(self.style, tokenizer) if stop_ids is None else stop_ids)
        model_context = model.cfg.context_length
        self.context_length = min(context_length or DEFAULT_CONTEXT, model_context)
        if self.context_length < 2:
            raise ValueError(f"context_length must be at least 2, got {self.context_length}")
        self.turns: list[Turn] = []
        self.last_stats: TurnStats | None = None
        self._cache = None
        self._cached: list[int] = []          # the ids whose keys and values the cache holds, in order
        self._encoded: dict[str, list[int]] = {}

    # ------------------------------------------------------------------ settings and state
    def check_sampling(self) -> None:
        """ValueError for a temperature, top-k or top-p that sampling cannot use."""
        if not (isinstance(self.temperature, (int, float)) and self.temperature >= 0):
            raise ValueError(f"temperature must be a number >= 0, got {self.temperature!r}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    def reset(self) -> None:
        """Forget the conversation (the system message stays, and so does its place in the cache)."""
        self.turns = []

    @property
    def messages(self) -> list[dict]:
        """The conversation as template messages: the system message, then each turn's two."""
        out = [{"role": "system", "content": self.system}] if self.system is not None else []
        for t in self.turns:
            out += [t.message, {"role": "assistant", "content": t.answer}]
        return out

    @property
    def cached_tokens(self) -> int:
        """How many tokens of the conversation the KV cache holds."""
        return len(self._cached)

    def conversation_ids(self) -> list[int]:
        """The ids of the whole conversation so far, as the model read and wrote them (the last
        answer's stop token included)."""
        if not self.turns:
            return []
        last = self.turns[-1]
        ids = self._conversation_ids(self.turns[:-1], last.message)
        return ids + last.answer_ids + ([last.stop_id] if last.stop_id is not None else [])

    # ------------------------------------------------------------------ ids of the conversation
    def _encode(self, text: str) -> list[int]:
        ids = self._encoded.get(text)
        if ids is None:
            if len(self._encoded) > 1000:
                self._encoded.clear()
            ids = self._encoded[text] = encode_chat(self.tokenizer, text, self.style.special_markers)
        return list(ids)

    def _opening(self, message: dict) -> str:
        system = [{"role": "system", "content": self.system}] if self.system is not None else []
        return self.style.render(system + [message], True, **self.options)

    def _conversation_ids(self, turns: Sequence[Turn], message: dict) -> list[int]:
        """The ids of ``turns`` followed by ``message`` and the generation prompt."""
        if not self.style.multi_turn:             # one exchange: the message alone
            return self._encode(self._opening(message))
        ids = self._encode(self._opening(turns[0].message if turns else message))
        for i, turn in enumerate(turns):
            after = turns[i + 1].message if i + 1 < len(turns) else message
            text = self.style.next_turn(after["content"], **self.options)
            ids += turn.answer_ids
            if turn.stop_id is not None:
                # the template's own end of the answer, if the model wrote it, is already an id
                written = self.tokenizer.decode([turn.stop_id])
                if written and text.startswith(written):
                    ids.append(turn.stop_id)
                    text = text[len(written):]
            ids += self._encode(text)
        return ids

    def _fit(self, message: dict) -> tuple[list[int], int]:
        """The conversation's ids with ``message``, and how many of the oldest turns had to go for
        them to fit with room for an answer (up to max_new_tokens, at most half the context)."""
        room = min(self.max_new_tokens, self.context_length // 2)
        dropped = 0
        while True:
            ids = self._conversation_ids(self.turns[dropped:], message)
            if (len(ids) + room <= self.context_length or dropped == len(self.turns)
                    or not self.style.multi_turn):
                break
            dropped += 1
        if len(ids) >= self.context_length:
            system = " and the system message" if self.system else ""
            raise ContextFullError(f"the message takes {len(ids)} tokens with the template{system}, and the context "
                                   f"holds {self.context_length}; send a shorter one")
        return ids, dropped

    # ------------------------------------------------------------------ the cache
    def _new_cache(self):
        if self._cache is None:
            self._cache = self.model.new_kv_cache(1, self.context_length)
            self._cached = []
        return self._cache

    def _rewind(self, length: int) -> None:
        """Keep only the first ``length`` cached positions (none, if the cache cannot be cut there:
        a sliding-window layer may have let go of keys that position still needs)."""
        cache = self._new_cache()
        if cache.length != length or len(self._cached) != length:
            try:
                if length == 0 or not hasattr(cache, "truncate"):
                    raise ValueError("start again")
                cache.truncate(length)
            except ValueError:
                cache.reset()
                length = 0
        self._cached = self._cached[:length]

    # ------------------------------------------------------------------ one turn
    def send(self, content: str, **fields) -> Iterator[str]:
        """Add a user message (``fields``: more keys of the message, such as alpaca's ``input``)
        and return the iterator of the answer's text pieces. Raises :class:`ContextFullError` at
        once if the message cannot fit; older turns that must go to make room are dropped here."""
        if not isinstance(content, str):
            raise ValueError(f"the message must be a string, got {type(content).__name__}")
        self.check_sampling()
        message = {"role": "user", "content": content, **fields}
        ids, dropped = self._fit(message)
        self.turns = self.turns[dropped:]
        self.last_stats = TurnStats(dropped_turns=dropped)
        return self._answer(message, ids, self.last_stats)

    def _sample(self, logits) -> int:
        return int(sample_next(logits.data[:, -1, :], self.temperature, self.top_k, self.top_p, [self.rng])[0])

    def _answer(self, message: dict, ids: list[int], stats: TurnStats) -> Iterator[str]:
        turn = Turn(message)
        stream = TextStream(self.tokenizer)
        model = self.model
        was_training = model.training
        model.eval()
        try:
            cache = self._new_cache()
            keep = 0
            for a, b in zip(self._cached, ids[:-1]):     # at least one new id, for the next logits
                if a != b:
                    break
                keep += 1
            self._rewind(keep)
            stats.reused_tokens, stats.prefill_tokens = keep, len(ids) - keep
            with mg.no_grad():
                start = time.perf_counter()
                logits = model(np.asarray([ids[keep:]], dtype=np.int64), kv_cache=cache, last_only=True)
                self._cached = list(ids)
                stats.prefill_seconds = time.perf_counter() - start
                start = time.perf_counter()
                while True:
                    next_id = self._sample(logits)
                    stats.decode_tokens += 1
                    if next_id in self.stop_ids:
                        turn.stop_id, stats.stop = next_id, "stop token"
                        break
                    turn.answer_ids.append(next_id)
                    stats.decode_seconds += time.perf_counter() - start
                    piece = stream.push(next_id)
                    if piece:
                        yield piece
                    start = time.perf_counter()
                    if len(turn.answer_ids) >= self.max_new_tokens:
                        stats.stop = "length"
                        break
                    if len(self._cached) >= self.context_length:
                        stats.stop = "context"
                        break
                    logits = model(np.asarray([[next_id]], dtype=np.int64), kv_cache=cache, last_only=True)
                    self._cached.append(next_id)
                stats.decode_seconds += time.perf_counter() - start
            rest = stream.flush()
            if rest:
                yield rest
        except BaseException:      # Ctrl-C, or the caller closed the iterator: keep what was said
            stats.stop = "interrupted"
            raise
        finally:
            model.train(was_training)
            if self._cache is not None and self._cache.length != len(self._cached):
                self._rewind(min(self._cache.length, len(self._cached)))   # a forward pass cut short
            turn.answer = self.tokenizer.decode(turn.answer_ids)
            self.turns.append(turn)
