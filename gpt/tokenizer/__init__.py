"""Tokenizers (book chapter 2): the book's word-level ``SimpleTokenizer`` and a byte-level BPE.

``BPETokenizer`` trains a vocabulary on your text, and loads OpenAI's GPT-2 vocabulary files to encode
exactly as ``tiktoken.get_encoding("gpt2")`` does. ``HFTokenizer`` reads the ``tokenizer.json``
that today's models ship (byte-level BPE, SentencePiece-style BPE, WordPiece) and encodes exactly as
the ``tokenizers`` library does.
"""
from gpt.tokenizer.bpe import BPETokenizer
from gpt.tokenizer.hf import HFTokenizer
from gpt.tokenizer.pretokenize import GPT2_PATTERN
from gpt.tokenizer.simple import SimpleTokenizer

__all__ = ["SimpleTokenizer", "BPETokenizer", "HFTokenizer", "GPT2_PATTERN"]
