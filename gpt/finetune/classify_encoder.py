"""Chapter 6 with an encoder: classify texts with BERT instead of the GPT (beyond the book).

The book reads a class off the GPT's LAST token, the only position whose causal attention saw the
whole text. An encoder's attention sees both directions, so any position sees everything; the
text's vector is pooled as sentence-transformers does (:func:`gpt.architectures.bert.pool`):

    ids (b, T) -> BertModel, padding masked -> hidden (b, T, d)
        -> pool: "cls" (the [CLS] token's vector) or "mean" (over the real tokens) -> (b, d)
        -> out_head Linear(d, num_classes) -> logits, returned as (b, 1, num_classes)

The extra axis of length 1 makes :class:`BertClassifier` answer like the GPT classifier of
gpt/finetune/classify.py, whose loss, accuracy, trainer, ``classify``, ``save_classifier`` and
``load_classifier`` read ``model(ids, last_only=True)[:, -1, :]``: all of them work unchanged.
Padding is recognised by its id (``pad_token_id``, BERT's [PAD]), which is never a real token.

:func:`word_tokenizer` makes a small BERT-style WordPiece vocabulary from the training texts, for
encoders (and decoders, in the encoder-vs-decoder experiment) trained from scratch.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable

import numpy as np
import regex

import minigrad as mg
from minigrad import nn

from gpt.architectures.bert import BertConfig, BertModel, pool

POOLINGS = ("cls", "mean")
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_WORDS = regex.compile(r"\w+|[^\w\s]")          # about what BERT's pre-tokenizer splits a text into


class BertClassifier(nn.Module):
    """A BERT encoder with a classification head over its pooled text vector.

    ``model(ids)`` -> logits (b, 1, num_classes); ids (b, T) padded on the right with
    ``pad_token_id``. ``cfg`` is the encoder's BertConfig; ``trf_blocks``, ``final_norm`` and
    ``tok_emb`` are the encoder's, so ``freeze_for_classification`` and LoRA treat it as the GPT.
    """

    def __init__(self, cfg, num_classes: int = 2, pooling: str = "cls", pad_token_id: int | None = None):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
        self.bert = cfg if isinstance(cfg, BertModel) else BertModel(cfg)
        self.cfg = self.bert.cfg
        self.pooling = pooling
        self.pad_token_id = self.cfg.pad_token_id if pad_token_id is None else int(pad_token_id)
        self.out_head = nn.Linear(self.cfg.emb_dim, num_classes)

    @property
    def trf_blocks(self):
        return self.bert.trf_blocks

    @property
    def final_norm(self):
        return self.bert.final_norm

    @property
    def tok_emb(self):
        return self.bert.tok_emb

    def forward(self, in_idx, last_only: bool = False):
        ids = np.asarray(in_idx.data if isinstance(in_idx, mg.Tensor) else in_idx)
        mask = (ids != self.pad_token_id).astype(np.int64)                  # (b, T): 1 = token
        mask[:, 0] = 1                                                       # an all-padding row still has a vector
        hidden = self.bert(ids, attention_mask=mask)                         # (b, T, d)
        return self.out_head(pool(hidden, mask, self.pooling))[:, None, :]  # (b, 1, num_classes)


def word_tokenizer(texts: Iterable[str], max_words: int = 4000):
    """A BERT-style WordPiece tokenizer (an :class:`gpt.tokenizer.HFTokenizer`) whose vocabulary is
    BERT's five special tokens, every character of the texts alone and as a ``##`` continuation, and
    their ``max_words`` most frequent lowercased words (ties by first appearance): a known word is one
    token, any other word falls back to characters. Encoding adds [CLS] ... [SEP] as BERT's does."""
    from gpt.tokenizer import HFTokenizer

    words = Counter(w for text in texts for w in _WORDS.findall(text.lower()))
    chars = sorted({c for w in words for c in w})
    vocab = list(SPECIALS) + chars + ["##" + c for c in chars]
    known = set(vocab)
    vocab += [w for w, _ in words.most_common() if w not in known][:max_words]
    ids = {t: i for i, t in enumerate(vocab)}
    special = [{"id": ids[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                "normalized": False, "special": True} for t in SPECIALS]
    edge = lambda t: {"SpecialToken": {"id": t, "type_id": 0}}  # noqa: E731
    spec = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": special,
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                       "strip_accents": None, "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [edge("[CLS]"), {"Sequence": {"id": "A", "type_id": 0}}, edge("[SEP]")],
                           "pair": [edge("[CLS]"), {"Sequence": {"id": "A", "type_id": 0}}, edge("[SEP]"),
                                    {"Sequence": {"id": "B", "type_id": 1}}, {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
                           "special_tokens": {t: {"id": t, "ids": [ids[t]], "tokens": [t]} for t in ("[CLS]", "[SEP]")}},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": ids},
    }
    return HFTokenizer(spec)


def small_bert_config(vocab_size: int, context_length: int, emb_dim: int = 128, n_layers: int = 2,
                      n_heads: int = 4, drop_rate: float = 0.1) -> BertConfig:
    """A small BERT to train from scratch (BERT's layout: post-norm, erf GELU, hidden 4 x emb_dim,
    no pooler; [PAD] is id 0 as in :func:`word_tokenizer`)."""
    return BertConfig(vocab_size=vocab_size, context_length=context_length, emb_dim=emb_dim, n_heads=n_heads,
                      n_layers=n_layers, hidden_dim=4 * emb_dim, drop_rate=drop_rate, attn_drop_rate=drop_rate,
                      add_pooler=False, pad_token_id=0)
