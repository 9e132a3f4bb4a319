"""mg.profile(): per-op forward/backward time. Timings themselves are never asserted (machines are
noisy); what is checked is which ops and phases are recorded, how often, and that the sums agree."""
import numpy as np
import pytest

import minigrad as mg
from minigrad import profiler
from gpt.model import GPTConfig, GPTModel


def small_graph():
    x = mg.tensor(np.arange(12, dtype=np.float32).reshape(4, 3) - 5, requires_grad=True)
    w = mg.tensor(np.ones((3, 2), dtype=np.float32), requires_grad=True)
    return (x @ w).relu().sum()


def test_records_each_op_once_per_phase_with_its_call_count():
    with mg.profile() as prof:
        small_graph().backward()
        mg.tensor([1.0, -2.0], requires_grad=True).relu().sum().backward()
    calls = {key: n for key, (_, n) in prof.records.items()}
    assert calls == {("MatMul", "forward"): 1, ("MatMul", "backward"): 1,
                     ("ReLU", "forward"): 2, ("ReLU", "backward"): 2,
                     ("Sum", "forward"): 2, ("Sum", "backward"): 2}
    assert all(seconds >= 0 for seconds, _ in prof.records.values())


def test_no_grad_records_only_forward_and_nothing_is_recorded_outside_the_block():
    small_graph().backward()                      # before: not recorded anywhere
    with mg.profile() as prof, mg.no_grad():
        small_graph()
    small_graph().backward()                      # after: not recorded either
    assert {phase for _, phase in prof.records} == {"forward"}
    assert {op: n for (op, _), (_, n) in prof.records.items()} == {"MatMul": 1, "ReLU": 1, "Sum": 1}
    assert profiler.current() is None


def test_sums_and_table_agree_with_the_records():
    with mg.profile() as prof:
        small_graph().backward()
    both, fwd, bwd = prof.seconds(), prof.seconds("forward"), prof.seconds("backward")
    for op in ("MatMul", "ReLU", "Sum"):
        assert both[op] == pytest.approx(fwd[op] + bwd[op])
        assert fwd[op] == prof.records[(op, "forward")][0]
    assert list(both.values()) == sorted(both.values(), reverse=True)
    assert prof.total == pytest.approx(sum(both.values()))
    lines = prof.table().splitlines()
    assert len(lines) == 1 + len(prof.records) + 1  # header, one per (op, phase), total
    for (op, phase), (seconds, calls) in prof.records.items():
        assert any(line.split()[:2] == [op, phase] and int(line.split()[3]) == calls for line in lines)
    assert lines[-1].split()[:2] == ["all", "ops"] and float(lines[-1].split()[2]) == pytest.approx(prof.total * 1e3, abs=0.06)


def test_a_nested_profile_has_its_own_records_which_also_count_for_the_outer_one():
    with mg.profile() as outer:
        small_graph()
        with mg.profile() as inner:
            mg.tensor([1.0]).exp()
        inner_seconds = inner.records[("Exp", "forward")][0]
        assert profiler.current() is outer
        mg.tensor([1.0]).exp()
    assert {op for op, _ in inner.records} == {"Exp"} and inner.records[("Exp", "forward")][1] == 1
    assert outer.records[("Exp", "forward")][1] == 2 and outer.records[("Exp", "forward")][0] >= inner_seconds
    assert outer.records[("MatMul", "forward")][1] == 1
    assert profiler.current() is None


def test_each_thread_profiles_only_its_own_ops():
    import threading

    seen = {}

    def other_thread():
        seen["current"] = profiler.current()         # not the main thread's profile
        with mg.profile() as mine:
            mg.tensor([1.0]).exp()
        seen["records"] = dict(mine.records)

    with mg.profile() as prof:
        small_graph()
        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join()
        assert profiler.current() is prof               # the thread's exit did not end this profile
        mg.tensor([1.0]).log()
    assert seen["current"] is None and set(seen["records"]) == {("Exp", "forward")}
    assert ("Exp", "forward") not in prof.records and prof.records[("Log", "forward")][1] == 1


def test_an_error_inside_the_block_still_ends_the_profile():
    with pytest.raises(ValueError):
        with mg.profile():
            raise ValueError("boom")
    assert profiler.current() is None


def test_a_gpt_forward_and_backward_times_every_linear_layer():
    cfg = GPTConfig(vocab_size=50, context_length=8, emb_dim=16, n_heads=2, n_layers=3, drop_rate=0.0)
    mg.manual_seed(0)
    model = GPTModel(cfg)
    ids = np.random.default_rng(0).integers(0, 50, (2, 8))
    with mg.profile() as prof:
        model(ids).sum().backward()
    linears = 6 * cfg.n_layers + 1   # query, key, value, out_proj, two feed-forward layers; the head
    assert prof.records[("Linear", "forward")][1] == linears
    assert prof.records[("Linear", "backward")][1] == linears
    assert prof.records[("LayerNorm", "forward")][1] == 2 * cfg.n_layers + 1
