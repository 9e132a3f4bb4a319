"""Chapter 3's "before attention": RNN encoder-decoders, without and with Bahdanau attention.

Both read the source with the same bidirectional GRU :class:`Encoder` and write the target with a
GRU decoder fed the previous target token. They differ in one place, the context vector c_i that
the decoder sees at output step i:

* :class:`RNNEncoderDecoder` (Cho et al. 2014, "Learning phrase representations using RNN
  encoder-decoder"): one fixed context c = the encoder's final states, the same at every step.
  Everything the decoder will ever know about the input has to fit in that one vector: the
  bottleneck the book describes ("the RNN has only one hidden state at a time, which needs to
  encapsulate the entire context").
* :class:`BahdanauEncoderDecoder` (Bahdanau, Cho & Bengio 2015, "Neural machine translation by
  jointly learning to align and translate"): c_i = sum_j alpha_ij h_j, a weighted sum of *every*
  encoder state, with weights alpha_i = softmax_j(v^T tanh(W s_{i-1} + U h_j)) computed from the
  decoder's state (additive attention, :class:`BahdanauAttention`). The alphas are the alignment.

One decoder step (both models):

    c_i  = c                                  (fixed)      or   attention(s_{i-1}, h_1..h_S)
    s_i  = GRUCell([embed(y_{i-1}); c_i], s_{i-1}),        s_0 = tanh(W_init [h_S fwd; h_1 bwd])
    logits_i = Linear([s_i; c_i; embed(y_{i-1})])          (a "deep output" without the maxout)

Differences from the papers, for a small CPU experiment: a single GRU layer each, no maxout layer,
Adam instead of Adadelta, and both models use Bahdanau's bidirectional encoder (Cho et al. read the
input in one direction) so that the only difference between them is the context.

Shapes: b = batch, S = source length, T = target length, E = emb_dim, H = hidden_size (per encoder
direction; the decoder's state has 2H), V = vocabulary.
"""
from __future__ import annotations

import numpy as np

import minigrad as mg
from minigrad import nn
from minigrad.nn import functional as F
from minigrad.nn.recurrent import lengths_to_mask


class Encoder(nn.Module):
    """Embedding -> bidirectional GRU. src (b, S), lengths (b,) -> (states (b, S, 2H), final (b, 2H)):
    h_j = [forward state; backward state] at each source position (zero at padding), and the
    final states of both directions (forward after the last word, backward after the first)."""

    def __init__(self, vocab_size: int, emb_dim: int, hidden_size: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        self.rnn = nn.GRU(emb_dim, hidden_size, bidirectional=True)

    def forward(self, src, lengths):
        states, h_n = self.rnn(self.embedding(src), lengths)              # (b, S, 2H), (2, b, H)
        return states, mg.concat([h_n[0], h_n[1]], axis=-1)


class BahdanauAttention(nn.Module):
    """Additive attention: e_ij = v^T tanh(W s + U h_j), alpha_i = softmax over the real source words.

    ``keys(states)`` computes U h_j once per sentence; ``forward(query (b, Q), keys (b, S, A),
    values (b, S, K), pad (b, S) bool, True at padding) -> (context (b, K), alpha (b, S))``."""

    def __init__(self, query_dim: int, key_dim: int, attn_dim: int):
        super().__init__()
        self.W = nn.Linear(query_dim, attn_dim, bias=False)
        self.U = nn.Linear(key_dim, attn_dim)
        self.v = nn.Linear(attn_dim, 1, bias=False)

    def keys(self, states):
        return self.U(states)                                              # (b, S, A)

    def forward(self, query, keys, values, pad):
        b, s, a = keys.shape
        energy = self.v(mg.tanh(keys + self.W(query).reshape(b, 1, a))).reshape(b, s)   # (b, S)
        alpha = F.masked_softmax(energy, pad)                              # 0 at padding
        context = (alpha.reshape(b, 1, s) @ values).reshape(b, values.shape[-1])
        return context, alpha


class RNNEncoderDecoder(nn.Module):
    """GRU encoder-decoder with one fixed context vector (Cho et al. 2014). See the module docstring.

    ``model(src, src_lengths, tgt_in)`` -> logits (b, T, V), teacher-forced (the decoder reads the
    true previous token); ``start``/``step`` decode one token at a time (see ``gpt.seq2seq.decode``).
    """

    def __init__(self, vocab_size: int, emb_dim: int = 64, hidden_size: int = 64):
        super().__init__()
        d = 2 * hidden_size
        self.vocab_size, self.emb_dim, self.hidden_size = vocab_size, emb_dim, hidden_size
        self.encoder = Encoder(vocab_size, emb_dim, hidden_size)
        self.embedding = nn.Embedding(vocab_size, emb_dim)                  # the decoder's own
        self.init_state = nn.Linear(d, d)
        self.cell = nn.GRUCell(emb_dim + d, d)
        self.out = nn.Linear(d + d + emb_dim, vocab_size)

    # -------------------------------------------------------------- the one thing the two models do differently
    def _prepare(self, states, final, pad) -> dict:
        """What ``_context`` needs, per sentence (batch-first)."""
        return {"context": final}

    def _context(self, memory: dict, s):
        """(c_i (b, 2H), alignment (b, S) or None) for decoder state s_{i-1}."""
        return memory["context"], None

    # -------------------------------------------------------------- shared
    def _encode(self, src, lengths):
        src = np.asarray(src)
        states, final = self.encoder(src, lengths)
        pad = ~lengths_to_mask(lengths, src.shape[1])
        return self._prepare(states, final, pad), mg.tanh(self.init_state(final))

    def _step(self, memory, s, prev_ids):
        """One decoder step: (s_i, features for the output layer, alignment)."""
        e = self.embedding(prev_ids)                                      # (b, E)
        c, alpha = self._context(memory, s)
        s = self.cell(mg.concat([e, c], axis=-1), s)
        return s, mg.concat([s, c, e], axis=-1), alpha

    def forward(self, src, src_lengths, tgt_in, return_alignment: bool = False):
        """src (b, S), src_lengths (b,), tgt_in (b, T) = <bos> + target -> logits (b, T, V);
        with ``return_alignment`` also the attention weights (b, T, S) (None without attention)."""
        memory, s = self._encode(src, src_lengths)
        tgt_in = np.asarray(tgt_in)
        features, alignment = [], []
        for t in range(tgt_in.shape[1]):                                   # the decoder's time loop
            s, f, alpha = self._step(memory, s, tgt_in[:, t])
            features.append(f)
            alignment.append(alpha)
        logits = self.out(mg.stack(features, axis=1))                      # one matmul for every step
        if not return_alignment:
            return logits
        return logits, (None if alignment[0] is None else np.stack([a.data for a in alignment], axis=1))

    def start(self, src, src_lengths) -> dict:
        memory, s = self._encode(src, src_lengths)
        return {**{k: v.data if isinstance(v, mg.Tensor) else v for k, v in memory.items()}, "s": s.data}

    def step(self, state: dict, prev_ids):
        memory = {k: mg.Tensor(v) if v.dtype.kind == "f" else v for k, v in state.items() if k != "s"}
        s, f, _ = self._step(memory, mg.Tensor(state["s"]), np.asarray(prev_ids))
        log_probs = F.log_softmax(self.out(f), -1).data
        return log_probs, {**state, "s": s.data}


class BahdanauEncoderDecoder(RNNEncoderDecoder):
    """The same encoder-decoder with Bahdanau (additive) attention: a new context c_i at every
    output step, computed from every encoder state. ``model(..., return_alignment=True)`` also
    returns the alignment weights alpha (b, T, S)."""

    def __init__(self, vocab_size: int, emb_dim: int = 64, hidden_size: int = 64, attn_dim: int = 64):
        super().__init__(vocab_size, emb_dim, hidden_size)
        self.attention = BahdanauAttention(2 * hidden_size, 2 * hidden_size, attn_dim)

    def _prepare(self, states, final, pad) -> dict:
        return {"values": states, "keys": self.attention.keys(states), "pad": pad}

    def _context(self, memory, s):
        return self.attention(s, memory["keys"], memory["values"], memory["pad"])
