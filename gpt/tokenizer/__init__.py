"""Tokenizers (book chapter 2): the book's word-level ``SimpleTokenizer`` and a byte-level BPE.

``BPETokenizer`` trains a vocabulary on your text, and loads OpenAI's GPT-2 vocabulary files to encode
exactly as ``tiktoken.get_encoding("gpt2")`` does.
"""
from gpt.tokenizer.bpe import BPETokenizer
from gpt.tokenizer.pretokenize import GPT2_PATTERN
from gpt.tokenizer.simple import SimpleTokenizer

__all__ = ["SimpleTokenizer", "BPETokenizer", "GPT2_PATTERN"]
