"""Debugging aids: to_dot (Graphviz text of the graph) and detect_anomaly (the first op to produce
NaN/Inf, with the line of user code that created it)."""
import inspect
import re
import sys
import textwrap

import numpy as np
import pytest

import minigrad as mg
from minigrad import debug

QUOTED = r'"(?:[^"\\]|\\.)*"'  # a DOT double-quoted string: no bare quote inside


def dot_statements(text):
    """Check the DOT text's overall form and return its node and edge statements."""
    lines = text.strip().splitlines()
    assert lines[0] == "digraph minigrad {" and lines[-1] == "}"
    nodes, edges = {}, []
    for line in lines[1:-1]:
        line = line.strip()
        if m := re.fullmatch(rf"([tf]\d+) \[shape=(box|ellipse), label=({QUOTED})(.*)\];", line):
            nodes[m.group(1)] = m.group(3)[1:-1]
        elif m := re.fullmatch(r"([tf]\d+) -> ([tf]\d+);", line):
            edges.append((m.group(1), m.group(2)))
        else:
            assert line in ("rankdir=LR;", 'node [fontname="Helvetica", fontsize=10];'), line
    for a, b in edges:
        assert a in nodes and b in nodes, f"edge {a} -> {b} to an undeclared node"
    return nodes, edges


# ---------------------------------------------------------------- to_dot
def test_to_dot_shows_ops_shapes_dtypes_and_names():
    x = mg.tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True, name="x")
    w = mg.tensor(np.ones((3, 4)), requires_grad=True, name="weight")  # float64
    h = mg.relu(x @ w.astype(np.float32))
    h.name = "hidden"
    loss = h.sum()
    text = mg.to_dot(loss)
    nodes, edges = dot_statements(text)
    labels = list(nodes.values())
    for op in ("MatMul", "AsType", "ReLU", "Sum"):
        assert op in labels
    assert "x\\n(2, 3) float32" in labels
    assert "weight\\n(3, 4) float64" in labels
    assert "hidden\\n(2, 4) float32" in labels
    assert "() float32" in labels  # the loss
    # 6 tensors (x, weight, its float32 copy, x @ w, hidden, loss) + 4 ops;
    # each op has an edge to its output (4) and one from each input (1 + 2 + 1 + 1)
    assert len(nodes) == 10 and len(edges) == 4 + 5
    assert 'fillcolor="#dbe9f6"' in text  # leaves that require grad are highlighted


def test_to_dot_draws_a_shared_input_once():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    nodes, edges = dot_statements(mg.to_dot(x * x))
    assert len(nodes) == 3  # x, Mul, the product
    assert len(edges) == 3  # x -> Mul twice (both operands), Mul -> product


def test_to_dot_escapes_names():
    x = mg.tensor([1.0], requires_grad=True, name='say "hi" \\ bye')
    nodes, _ = dot_statements(mg.to_dot(x * 2.0))
    assert 'say \\"hi\\" \\\\ bye\\n(1,) float32' in nodes.values()


def test_to_dot_of_a_leaf():
    nodes, edges = dot_statements(mg.to_dot(mg.tensor([1.0, 2.0])))
    assert list(nodes.values()) == ["(2,) float32"] and edges == []


# ---------------------------------------------------------------- detect_anomaly
def test_forward_nan_names_the_op_and_the_user_line():
    x = mg.tensor([1.0, -1.0], requires_grad=True)
    with np.errstate(invalid="ignore"), mg.detect_anomaly():
        line = inspect.currentframe().f_lineno + 2
        with pytest.raises(FloatingPointError) as info:
            y = mg.log(x) * 2.0  # noqa: F841  (the offending line)
    message = str(info.value)
    assert message.startswith("Log produced NaN in its forward pass")
    assert f"{__file__}:{line}" in message
    assert "y = mg.log(x) * 2.0" in message


def test_forward_inf_names_the_op():
    with np.errstate(over="ignore"), mg.detect_anomaly():
        with pytest.raises(FloatingPointError, match="Exp produced Inf in its forward pass"):
            mg.exp(mg.tensor(np.array([1.0, 1000.0])))


def test_backward_inf_names_the_op_and_where_it_was_created():
    x = mg.tensor([0.0, 4.0], requires_grad=True)
    with np.errstate(divide="ignore"), mg.detect_anomaly():
        line = inspect.currentframe().f_lineno + 1
        root = mg.sqrt(x)  # finite forward; d sqrt/dx = 1 / (2 sqrt x) is Inf at 0
        loss = root.sum()
        with pytest.raises(FloatingPointError) as info:
            loss.backward()
    message = str(info.value)
    assert message.startswith("Sqrt produced Inf in its backward pass")
    assert f"{__file__}:{line}" in message and "root = mg.sqrt(x)" in message


def test_masked_fill_minus_infinity_then_softmax_is_not_an_anomaly():
    scores = mg.tensor(np.random.default_rng(0).standard_normal((2, 3, 3)), requires_grad=True)
    mask = np.triu(np.ones((3, 3), dtype=bool), k=1)
    with mg.detect_anomaly():
        weights = mg.softmax(scores.masked_fill(mask, -np.inf))
        log_weights = mg.log_softmax(scores.masked_fill(mask, -np.inf))
        (weights * 2.0).sum().backward()
        log_weights[..., 0].sum().backward()
    assert np.all(np.isfinite(scores.grad))


def test_values_already_non_finite_in_the_input_are_not_blamed_on_the_next_op():
    x = mg.tensor([np.nan, 1.0, np.inf])
    with mg.detect_anomaly():
        y = x * 2.0 + 1.0  # propagates NaN/Inf it was given: not an anomaly of Mul or Add
    assert np.isnan(y.data[0]) and np.isinf(y.data[2])


def test_anomaly_mode_is_off_outside_the_block():
    assert not debug.is_anomaly_enabled()
    with mg.detect_anomaly():
        assert debug.is_anomaly_enabled()
    assert not debug.is_anomaly_enabled()
    with np.errstate(invalid="ignore"):
        assert np.isnan(mg.log(mg.tensor([-1.0])).item())  # silently NaN, as in NumPy
    with pytest.raises(FloatingPointError):
        with mg.detect_anomaly():
            with np.errstate(invalid="ignore"):
                mg.log(mg.tensor([-1.0]))
    assert not debug.is_anomaly_enabled()


def test_user_code_in_a_folder_named_minigrad_is_found(tmp_path, monkeypatch):
    """Only minigrad's own package folder is skipped when looking for the user's line."""
    folder = tmp_path / "minigrad"
    folder.mkdir()
    (folder / "user_model.py").write_text(textwrap.dedent("""\
        import numpy as np
        import minigrad as mg

        def forward():
            return mg.log(mg.tensor([-1.0]))
    """))
    monkeypatch.syspath_prepend(str(folder))
    import user_model
    try:
        with np.errstate(invalid="ignore"), mg.detect_anomaly():
            with pytest.raises(FloatingPointError) as info:
                user_model.forward()
    finally:
        sys.modules.pop("user_model", None)
    assert f"{folder / 'user_model.py'}:5" in str(info.value)


def test_backward_anomaly_of_a_graph_built_outside_the_block_says_how_to_see_the_line():
    x = mg.tensor([0.0, 1.0], requires_grad=True)
    loss = mg.sqrt(x).sum()
    with np.errstate(divide="ignore"), mg.detect_anomaly():
        hint = r"Sqrt produced Inf in its backward pass.*run the forward pass inside detect_anomaly"
        with pytest.raises(FloatingPointError, match=hint):
            loss.backward()
