"""Where the time goes: wall-clock time of every op's forward and backward, summed per op.

    with mg.profile() as prof:
        loss = mg.cross_entropy(model(x).flatten(0, 1), y.reshape(-1))
        loss.backward()
    print(prof.table())

Inside the block, each ``Function``'s ``forward`` (in ``apply``) and ``backward`` (in the engine) is
timed with ``time.perf_counter``. ``prof.records`` maps ``(op name, "forward" | "backward")`` to
``[seconds, calls]``. Only the ops are timed: an optimizer step, gradient clipping, plain NumPy in
your own code and the engine's own work between two backward calls (summing gradients that meet,
undoing broadcasting) are not, so compare ``prof.total`` with the block's wall time to see that
share. A ``profile()`` inside another also counts for the outer one; each thread has its own.
"""
from __future__ import annotations

import contextlib
import threading

_state = threading.local()


class OpProfile:
    """Per-op time collected by :func:`profile`."""

    def __init__(self):
        self.records: dict[tuple[str, str], list] = {}

    def add(self, op: str, phase: str, seconds: float, calls: int = 1) -> None:
        record = self.records.setdefault((op, phase), [0.0, 0])
        record[0] += seconds
        record[1] += calls

    @property
    def total(self) -> float:
        """Seconds spent inside ops, forward and backward."""
        return sum(seconds for seconds, _ in self.records.values())

    def seconds(self, phase: str | None = None) -> dict[str, float]:
        """{op name: seconds} for one phase ("forward" or "backward"), or both summed; largest first."""
        out: dict[str, float] = {}
        for (op, ph), (seconds, _) in self.records.items():
            if phase is None or ph == phase:
                out[op] = out.get(op, 0.0) + seconds
        return dict(sorted(out.items(), key=lambda item: -item[1]))

    def table(self) -> str:
        """One line per (op, phase), largest first: milliseconds, calls and share of the ops' total."""
        total = self.total or 1.0
        rows = sorted(self.records.items(), key=lambda item: -item[1][0])
        lines = [f"{'op':<24}{'phase':<10}{'ms':>10}{'calls':>8}{'share':>8}"]
        for (op, phase), (seconds, calls) in rows:
            lines.append(f"{op:<24}{phase:<10}{seconds * 1e3:>10.1f}{calls:>8}{seconds / total:>8.1%}")
        lines.append(f"{'all ops':<34}{self.total * 1e3:>10.1f}")
        return "\n".join(lines)


def current() -> OpProfile | None:
    """This thread's innermost open profile, or None (what ``Function.apply`` and the engine check)."""
    return getattr(_state, "profile", None)


@contextlib.contextmanager
def profile():
    """Context manager yielding an :class:`OpProfile` that times every op this thread runs inside it."""
    outer, prof = current(), OpProfile()
    _state.profile = prof
    try:
        yield prof
    finally:
        _state.profile = outer
        if outer is not None:                       # the outer profile saw this block's ops too
            for (op, phase), (seconds, calls) in prof.records.items():
                outer.add(op, phase, seconds, calls)
