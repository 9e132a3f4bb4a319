"""Chapter 3, "Coding attention mechanisms", on the book's six-token sentence.

    3.3  attention without trainable weights: scores, softmax weights, context vectors
    3.4  scaled dot-product attention with query/key/value matrices (SelfAttentionV1, V2)
    3.5  causal attention: hide future tokens with a mask, dropout on the weights (CausalAttention)
    3.6  multi-head attention: stacked heads (MultiHeadAttentionWrapper), then the efficient
         version that splits one projection into heads (MultiHeadAttention)

Each input token is a 3-dimensional embedding, as in the book. The printed numbers of 3.3 are the
book's; from 3.4 on the weights are random, and minigrad's generator is not PyTorch's, so the values
differ from the book's while the shapes and properties (rows summing to one, zeros above the
diagonal) are the same.

    python examples/ch03_attention.py               (about a second; --fast is the same)
"""
from __future__ import annotations

import sys

import numpy as np
from _common import parse_args, section

import minigrad as mg
from minigrad import nn
from minigrad.nn import functional as F

from gpt.attention import (CausalAttention, MultiHeadAttention, MultiHeadAttentionWrapper, SelfAttentionV1,
                           SelfAttentionV2, simple_self_attention)

inputs = mg.tensor(
    [[0.43, 0.15, 0.89],  # Your     (x^1)
     [0.55, 0.87, 0.66],  # journey  (x^2)
     [0.57, 0.85, 0.64],  # starts   (x^3)
     [0.22, 0.58, 0.33],  # with     (x^4)
     [0.77, 0.25, 0.10],  # one      (x^5)
     [0.05, 0.80, 0.55]]  # step     (x^6)
)


def main() -> int:
    parse_args("Chapter 3: self-attention, causal attention and multi-head attention.")
    np.set_printoptions(precision=4, suppress=True)

    section("3.3.1 A simple self-attention mechanism, for one query")
    query = inputs[1]                                     # the 2nd token, "journey", is the query
    attn_scores_2 = inputs @ query                        # dot product of the query with every input
    print("Attention scores:", attn_scores_2.data)        # [0.9544 1.495 1.4754 0.8434 0.707 1.0865]
    attn_weights_2_tmp = attn_scores_2 / attn_scores_2.sum()
    print("Weights, divided by their sum:", attn_weights_2_tmp.data, f"sum: {attn_weights_2_tmp.sum().item():.4f}")
    attn_weights_2 = F.softmax(attn_scores_2, -1)         # softmax: positive, sums to 1, sharper
    print("Attention weights (softmax):", attn_weights_2.data)   # [0.1385 0.2379 0.2333 0.124 0.1082 0.1581]
    print(f"Sum: {attn_weights_2.sum().item():.4f}")
    context_vec_2 = attn_weights_2 @ inputs              # the weighted sum of all inputs
    print("Context vector z^(2):", context_vec_2.data)    # [0.4419 0.6515 0.5683]

    section("3.3.2 Attention weights for all inputs")
    attn_scores, attn_weights, all_context_vecs = simple_self_attention(inputs)
    print("Attention scores (6, 6):\n", attn_scores.data)
    print("Every row sums to 1:", np.allclose(attn_weights.data.sum(axis=-1), 1.0))
    print("All context vectors (6, 3):\n", all_context_vecs.data)

    section("3.4.1 Trainable weights, step by step")
    x_2 = inputs[1]
    d_in, d_out = inputs.shape[1], 2                      # 3 -> 2, as in the book
    mg.manual_seed(123)
    rng = mg.random.default_generator()
    W_query = nn.Parameter(rng.random((d_in, d_out), dtype=np.float32))
    W_key = nn.Parameter(rng.random((d_in, d_out), dtype=np.float32))
    W_value = nn.Parameter(rng.random((d_in, d_out), dtype=np.float32))
    query_2 = x_2 @ W_query
    keys, values = inputs @ W_key, inputs @ W_value
    print("query_2:", query_2.data, " keys:", keys.shape, " values:", values.shape)
    attn_scores_2 = query_2 @ keys.T                      # omega_2j = q_2 . k_j
    d_k = keys.shape[-1]
    attn_weights_2 = F.softmax(attn_scores_2 / d_k ** 0.5, -1)   # scaled by sqrt(d_k)
    print("Attention weights for query 2:", attn_weights_2.data)
    print("Context vector for query 2:", (attn_weights_2 @ values).data)

    section("3.4.2 SelfAttentionV1 and SelfAttentionV2")
    mg.manual_seed(123)
    sa_v1 = SelfAttentionV1(d_in, d_out)
    print("SelfAttentionV1(3, 2) on the 6 tokens:\n", sa_v1(inputs).data)
    mg.manual_seed(789)
    sa_v2 = SelfAttentionV2(d_in, d_out)                  # Linear layers: a better initialisation
    print("SelfAttentionV2(3, 2):\n", sa_v2(inputs).data)
    # Exercise 3.1: Linear stores W^T, so V1 with V2's transposed weights computes the same thing
    sa_v1.W_query.data = sa_v2.W_query.weight.data.T.copy()
    sa_v1.W_key.data = sa_v2.W_key.weight.data.T.copy()
    sa_v1.W_value.data = sa_v2.W_value.weight.data.T.copy()
    print("V1 with V2's weights gives V2's output:", np.allclose(sa_v1(inputs).data, sa_v2(inputs).data, atol=1e-6))

    section("3.5.1 Hiding future words with a causal mask")
    queries, keys = sa_v2.W_query(inputs), sa_v2.W_key(inputs)
    attn_scores = queries @ keys.T
    attn_weights = F.softmax(attn_scores / keys.shape[-1] ** 0.5, -1)
    context_length = attn_scores.shape[0]
    mask_simple = np.tril(np.ones((context_length, context_length), dtype=np.float32))
    masked_simple = attn_weights * mask_simple            # zero above the diagonal ...
    masked_simple_norm = masked_simple / masked_simple.sum(axis=-1, keepdims=True)   # ... renormalised
    print("Masked and renormalised weights:\n", masked_simple_norm.data)
    # The shorter way: -inf above the diagonal before the softmax, whose exp(-inf) = 0 does the rest
    mask = np.triu(np.ones((context_length, context_length), dtype=bool), k=1)
    masked = attn_scores.masked_fill(mask, -np.inf)
    attn_weights = F.softmax(masked / keys.shape[-1] ** 0.5, -1)
    print("The same with -inf and one softmax:", np.allclose(attn_weights.data, masked_simple_norm.data, atol=1e-6))

    section("3.5.2 Dropout on the attention weights")
    mg.manual_seed(123)
    dropout = nn.Dropout(0.5)                             # drop half, scale the rest by 1 / (1 - 0.5) = 2
    example = mg.ones(6, 6)
    print(dropout(example).data)
    print("Dropout on the causal weights:\n", dropout(attn_weights).data)
    dropout.eval()
    print("In eval mode dropout does nothing:", np.array_equal(dropout(example).data, example.data))

    section("3.5.3 CausalAttention on a batch")
    batch = mg.stack((inputs, inputs), axis=0)           # two identical sequences
    print("Batch:", batch.shape)                          # (2, 6, 3)
    mg.manual_seed(123)
    ca = CausalAttention(d_in, d_out, batch.shape[1], 0.0)
    context_vecs = ca(batch)
    print("context_vecs.shape:", context_vecs.shape)      # (2, 6, 2)
    # causality: the first token's output depends on the first token only
    changed = batch.data.copy()
    changed[:, 1:, :] += 1.0
    print("Changing tokens 2-6 leaves token 1's output alone:",
          np.allclose(ca(changed).data[:, 0], context_vecs.data[:, 0]))

    section("3.6 Multi-head attention")
    mg.manual_seed(123)
    mha = MultiHeadAttentionWrapper(d_in, d_out, batch.shape[1], 0.0, num_heads=2)
    context_vecs = mha(batch)
    print("MultiHeadAttentionWrapper, 2 heads of d_out=2:", context_vecs.shape)   # (2, 6, 4)
    # Batched matrix products, as the efficient version uses them (the book's a @ a.transpose(2, 3))
    a = mg.tensor([[[[0.2745, 0.6584, 0.2775, 0.8573],
                     [0.8993, 0.0390, 0.9268, 0.7388],
                     [0.7179, 0.7058, 0.9156, 0.4340]],
                    [[0.0772, 0.3565, 0.1479, 0.5331],
                     [0.4066, 0.2318, 0.4545, 0.9737],
                     [0.4606, 0.5159, 0.4220, 0.5786]]]])   # (b=1, heads=2, tokens=3, head_dim=4)
    print("a @ a.transpose(2, 3), one (3, 3) block per head:\n", (a @ a.transpose(2, 3)).data)
    mg.manual_seed(123)
    mha = MultiHeadAttention(d_in, d_out, batch.shape[1], 0.0, num_heads=2)
    context_vecs = mha(batch)
    print("MultiHeadAttention, d_out=2 split into 2 heads:", context_vecs.shape)  # (2, 6, 2)
    print(context_vecs.data)
    # Exercise 3.3: GPT-2 small's attention layer
    gpt2_mha = MultiHeadAttention(768, 768, 1024, 0.0, num_heads=12)
    print(f"A GPT-2-sized MultiHeadAttention (768 -> 768, 12 heads): {gpt2_mha.num_parameters():,} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
