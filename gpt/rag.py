"""Retrieval-augmented generation: put the passages an index finds for a question into the prompt.

The second half of RAG (beyond the book; the first half, chunking and searching, is gpt/retrieval.py).
A :class:`Retriever` opens an index folder made by ``python -m gpt index`` together with the
sentence encoder that built it (the index records that folder; give another one if it moved),
embeds a question and returns the ``k`` best chunks. The model never sees the index: it reads the
passages as text, in one of two documented formats.

``generate --rag INDEX`` (a model that continues text) -- the passages, numbered, then the prompt::

    [1] (notes/python.txt) To write text to a file in Python, open it with mode 'w' ...
    [2] (notes/space.txt) The Moon orbits the Earth about once every 27 days ...

    <the prompt>

``chat --rag INDEX`` (an instruction-tuned model) -- each user message is replaced by::

    Use these passages to answer the question. If they do not contain the answer, say so.

    [1] (notes/python.txt) To write text to a file in Python, open it with mode 'w' ...
    [2] (notes/space.txt) The Moon orbits the Earth about once every 27 days ...

    Question: <the message>

Passages come best first; a passage's line breaks and runs of spaces become single spaces, so each
passage is one line. Retrieval uses only the new message (not the conversation before it).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from gpt.retrieval import Chunk, VectorIndex

#: The sentence before the passages in a chat message.
CHAT_INSTRUCTION = "Use these passages to answer the question. If they do not contain the answer, say so."

Hit = tuple[float, Chunk]      # (cosine, chunk), as VectorIndex.search returns them


def format_passages(hits: Sequence[Hit]) -> str:
    """``[i] (source) text`` lines, one per passage, best first."""
    return "\n".join(f"[{i}] ({chunk.source}) {' '.join(chunk.text.split())}" for i, (_, chunk) in enumerate(hits, 1))


def generate_prompt(prompt: str, hits: Sequence[Hit]) -> str:
    """The passages, a blank line, then the prompt (the prompt alone when nothing was found)."""
    return f"{format_passages(hits)}\n\n{prompt}" if hits else prompt


def chat_message(question: str, hits: Sequence[Hit]) -> str:
    """The instruction, the passages and the question, as one user message (the question alone when
    nothing was found)."""
    return f"{CHAT_INSTRUCTION}\n\n{format_passages(hits)}\n\nQuestion: {question}" if hits else question


def describe(hits: Sequence[Hit], width: int = 200) -> str:
    """What was retrieved, for a person: rank, cosine, source and character span, a preview."""
    lines = [f"retrieved {len(hits)} passage{'s' if len(hits) != 1 else ''}:"]
    for i, (score, chunk) in enumerate(hits, 1):
        text = " ".join(chunk.text.split())
        lines.append(f"  [{i}] {score:.4f}  {chunk.source} [{chunk.start}:{chunk.end}]  "
                     f"{text[:width]}{'...' if len(text) > width else ''}")
    return "\n".join(lines)


class Retriever:
    """An index and the encoder that embeds questions for it.

    >>> r = Retriever.open("notes.index")                  # the encoder recorded in the index
    >>> r.retrieve("how do I open a file?", k=3)           # [(cosine, Chunk), ...] best first
    """

    def __init__(self, index: VectorIndex, encoder):
        if encoder.dim != index.vectors.shape[1]:
            raise ValueError(f"the encoder makes {encoder.dim}-dimensional vectors but the index holds "
                             f"{index.vectors.shape[1]}-dimensional ones; give the encoder the index was made with")
        self.index, self.encoder = index, encoder

    @classmethod
    def open(cls, folder: str | os.PathLike, encoder: str | os.PathLike | None = None) -> "Retriever":
        """Load the index folder and its encoder (``encoder`` overrides the folder the index
        records). Every problem is a ValueError of one line that says what to do."""
        from gpt.embeddings import SentenceEncoder

        index = load_index(folder)
        where = encoder or index.meta.get("encoder")
        if not where:
            raise ValueError(f"the index {folder} does not say which encoder made it; give its folder with --encoder")
        if not Path(where).is_dir():
            raise ValueError(f"the index's encoder folder {str(where)!r} is not there; give it with --encoder")
        try:
            model = SentenceEncoder.from_pretrained(where)
        except (OSError, ValueError, KeyError) as e:
            raise ValueError(f"cannot read the encoder {where}: {e}") from None
        return cls(index, model)

    def retrieve(self, question: str, k: int = 3) -> list[Hit]:
        """The ``k`` chunks nearest the question (exact search), best first."""
        return self.index.search(self.encoder.encode(question), k)


def load_index(folder: str | os.PathLike) -> VectorIndex:
    """``VectorIndex.load`` with every failure (missing, damaged or foreign files) as a one-line ValueError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"index not found: {folder} (make one with `python -m gpt index`)")
    try:
        index = VectorIndex.load(folder)
        if index.vectors.dtype.kind != "f":
            raise ValueError(f"vectors.npy holds {index.vectors.dtype}, not floats")
        np.asarray(index.vectors[:1])           # a truncated file fails here rather than mid-answer
    except FileNotFoundError as e:
        raise ValueError(str(e)) from None
    except (ValueError, TypeError, KeyError, OSError, json.JSONDecodeError) as e:
        reason = " ".join(str(e).split())
        raise ValueError(f"the index {folder} is damaged ({reason}); make it again with `python -m gpt index`") from None
    return index
