"""No op silently changes the dtype: a forward and backward pass through every op keeps float32
inputs float32 (outputs and every gradient), also with Python float, np.float64 scalar, float64
array and int array constants mixed in, and keeps float64 inputs float64."""
import numpy as np
import pytest

import minigrad as mg


class Leaves:
    """Makes leaf tensors of one dtype (uniform values in [low, high)) and remembers them, and the
    dtype of every gradient that reaches them as the ops' backward passes made it (a hook sees it
    before the engine stores it as ``.grad``, which would cast it to the leaf's dtype)."""

    def __init__(self, dtype):
        self.dtype, self.made, self.rng = dtype, [], np.random.default_rng(0)
        self.arriving: list[list] = []

    def __call__(self, *shape, low=-2.0, high=2.0):
        t = mg.tensor(self.rng.uniform(low, high, shape).astype(self.dtype), requires_grad=True)
        seen = []
        t.register_hook(lambda g: seen.append(g.dtype))
        self.made.append(t)
        self.arriving.append(seen)
        return t


def positive(t, *shape):
    return t(*shape, low=0.5, high=2.0)


F64 = np.float64
MASK = np.triu(np.ones((3, 3), dtype=bool), k=1)

# name -> function of a Leaves factory returning the output tensor
CASES = {
    "add": lambda t: t(2, 3) + t(3),
    "add python float": lambda t: t(2, 3) + 1.5,
    "add reflected np.float64": lambda t: F64(1.5) + t(2, 3),
    "add float64 array": lambda t: t(2, 3) + np.ones(3, dtype=F64),
    "add int array": lambda t: t(2, 3) + np.arange(3),
    "sub": lambda t: t(2, 1) - t(3),
    "sub reflected python float": lambda t: 2.0 - t(3),
    "mul np.float64": lambda t: t(2, 3) * F64(2.0),
    "mul reflected np.float64": lambda t: F64(2.0) * t(2, 3),
    "mul float64 0-d array": lambda t: t(2, 3) * np.array(0.5),
    "mul": lambda t: t(2, 3) * t(2, 3),
    "div": lambda t: t(2, 3) / positive(t, 3),
    "div reflected np.float64": lambda t: F64(3.0) / positive(t, 2, 3),
    "div python float": lambda t: t(2, 3) / 7.0,
    "neg": lambda t: -t(4),
    "pow int": lambda t: t(2, 3) ** 3,
    "pow np.float64": lambda t: positive(t, 2, 3) ** F64(0.5),
    "pow negative": lambda t: positive(t, 2, 3) ** -1.5,
    "matmul 2-D": lambda t: t(2, 3) @ t(3, 4),
    "matmul batched broadcast": lambda t: t(2, 1, 2, 3) @ t(3, 3, 2),
    "matmul 1-D left": lambda t: t(3) @ t(2, 3, 4),
    "matmul 1-D right": lambda t: t(2, 2, 3) @ t(3),
    "matmul float64 array": lambda t: t(2, 3) @ np.ones((3, 2), dtype=F64),
    "linear": lambda t: mg.linear(t(2, 5, 3), t(4, 3), t(4)),
    "exp": lambda t: mg.exp(t(3)),
    "log": lambda t: mg.log(positive(t, 3)),
    "sqrt": lambda t: mg.sqrt(positive(t, 3)),
    "tanh": lambda t: mg.tanh(t(3)),
    "sigmoid": lambda t: mg.sigmoid(t(3)),
    "relu": lambda t: mg.relu(t(3)),
    "gelu": lambda t: mg.gelu(t(3)),
    "gelu 0-d": lambda t: mg.gelu(t()),
    "gelu_erf": lambda t: mg.gelu_erf(t(3)),
    "gelu_erf 0-d": lambda t: mg.gelu_erf(t()),
    "erf": lambda t: mg.erf(t(2, 3)),
    "abs": lambda t: mg.abs(t(3)),
    "astype round trip": lambda t: t(3).astype(np.float16).astype(t.dtype),
    "sum": lambda t: t(2, 3).sum(axis=1),
    "mean": lambda t: t(2, 3).mean(axis=(0, 1), keepdims=True),
    "max": lambda t: t(2, 3).max(axis=0),
    "var": lambda t: t(2, 3).var(axis=1),
    "var biased": lambda t: t(2, 3).var(ddof=0),
    "reshape": lambda t: t(2, 3).reshape(3, 2),
    "reshape view": lambda t: t(2, 3).view(-1),
    "flatten": lambda t: t(2, 3, 2).flatten(1),
    "unsqueeze": lambda t: t(2, 3).unsqueeze(0),
    "squeeze": lambda t: t(2, 1, 3).squeeze(1),
    "transpose": lambda t: t(2, 3).transpose(0, 1),
    "permute": lambda t: t(2, 3, 4).permute(2, 0, 1),
    "swapaxes": lambda t: mg.swapaxes(t(2, 3, 4), 0, 2),
    "permute T": lambda t: t(2, 3).T,
    "getitem slice": lambda t: t(4, 3)[1:3, ::2],
    "getitem int array": lambda t: t(4, 3)[[0, 0, 2]],
    "getitem bool mask": lambda t: t(4, 3)[np.array([True, False, True, True])],
    "concat": lambda t: mg.concat([t(2, 3), t(1, 3)]),
    "cat": lambda t: mg.cat([t(2, 3), t(2, 2)], axis=-1),
    "stack": lambda t: mg.stack([t(2, 3), t(2, 3)], axis=1),
    "split": lambda t: mg.split(t(5, 2), 2)[2] * 1.0,
    "chunk": lambda t: mg.chunk(t(5, 2), 2, axis=0)[0],
    "where": lambda t: mg.where(np.array([True, False, True]), t(2, 3), 0.5),
    "where two tensors": lambda t: mg.where(np.array([True, False, True]), t(3), t(2, 3)),
    "masked_fill -inf softmax": lambda t: mg.softmax(t(3, 3).masked_fill(MASK, -np.inf)),
    "masked_fill np.float64": lambda t: t(3, 3).masked_fill(MASK, F64(-1e9)),
    "softmax": lambda t: mg.softmax(t(2, 3), axis=0),
    "log_softmax": lambda t: mg.log_softmax(t(2, 3)),
    "masked_softmax": lambda t: mg.masked_softmax(t(2, 3, 3), MASK, scale=np.float64(0.5)),
    "cross_entropy mean": lambda t: mg.cross_entropy(t(2, 3, 4), np.array([[0, 3, -100], [1, 1, 2]])),
    "cross_entropy none": lambda t: mg.cross_entropy(t(4, 3), np.array([0, 2, -100, 1]), reduction="none"),
    "cross_entropy sum": lambda t: mg.cross_entropy(t(4, 3), np.array([0, 2, -100, 1]), reduction="sum"),
    "layer_norm": lambda t: mg.layer_norm(t(2, 3, 4), t(4), t(4)),
    "layer_norm no affine": lambda t: mg.layer_norm(t(2, 4)),
    "rms_norm": lambda t: mg.rms_norm(t(2, 3, 4), t(4)),
    "rms_norm gemma offset": lambda t: mg.rms_norm(t(2, 4), t(4), offset=1.0),
    "rms_norm no weight": lambda t: mg.rms_norm(t(2, 4)),
    "silu": lambda t: mg.silu(t(3)),
    "silu 0-d": lambda t: mg.silu(t()),
    "swiglu": lambda t: mg.swiglu(t(2, 3), t(2, 3)),
    "embedding": lambda t: mg.embedding(np.array([[1, 2, 1]]), t(4, 3)),
    "rnn_cell gru": lambda t: mg.rnn_cell(t(2, 6), t(2, 2), t(6, 2), t(6), kind="gru", mask=np.array([True, False])),
    "rnn_cell lstm": lambda t: mg.rnn_cell(t(2, 8), t(2, 4), t(8, 2), t(8), kind="lstm"),
    "recurrence rnn": lambda t: mg.recurrence(t(2, 3, 2), t(2, 2), t(2, 2), t(2), kind="rnn",
                                              mask=np.array([[True, True, False], [True, True, True]])),
    "recurrence lstm reverse": lambda t: mg.recurrence(t(2, 3, 8), t(2, 4), t(8, 2), t(8), kind="lstm", reverse=True),
    "dropout": lambda t: mg.dropout(t(4, 5), 0.3, rng=np.random.default_rng(0)),
    "mul by a detached copy": lambda t: (lambda a: a * a.detach())(t(3)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(CASES))
def test_dtype_is_preserved_forward_and_backward(name, dtype):
    leaves = Leaves(dtype)
    out = CASES[name](leaves)
    assert out.dtype == dtype, f"{name}: output is {out.dtype}"
    out.backward(np.random.default_rng(1).standard_normal(out.shape))  # a float64 upstream array
    for i, (leaf, arriving) in enumerate(zip(leaves.made, leaves.arriving)):
        assert leaf.grad is not None, f"{name}: input {i} got no gradient"
        assert leaf.grad.dtype == dtype, f"{name}: gradient of input {i} is {leaf.grad.dtype}"
        assert arriving and all(d == dtype for d in arriving), f"{name}: backward made {arriving} for input {i}"


def test_every_op_is_covered():
    """Every differentiable op exported by minigrad has a case (named after it) above."""
    missing = set(mg.ops.__all__) - {name.split()[0] for name in CASES}
    assert not missing, f"ops without a dtype case: {sorted(missing)}"


@pytest.mark.parametrize("expr", [
    lambda: mg.arange(3) * 0.5,
    lambda: mg.arange(3) / 2,
    lambda: mg.arange(1, 4) / mg.arange(1, 4),
    lambda: mg.tensor([1, 2]).mean(),
    lambda: mg.tensor([1, 2]) + mg.zeros(2),
    lambda: mg.zeros(2) * mg.tensor([True, False]),
])
def test_integer_tensors_meet_floats_in_float32(expr):
    """Integers mixed with floats (or divided, or averaged) give float32, as in PyTorch, where
    NumPy's own promotion would give float64."""
    assert expr().dtype == np.float32
