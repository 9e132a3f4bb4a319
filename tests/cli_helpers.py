"""Helpers shared by the tests of the command line: run ``python -m gpt`` in-process or in a real
subprocess, check a one-line error, read the newest checkpoint's weights, and press Ctrl-C at a
chosen training step."""
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from gpt import safetensors
from gpt.cli import main
from gpt.train import Trainer

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*argv, stdin=None):
    """``python -m gpt ARGV`` in-process, reading ``stdin`` if given: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        old_stdin = sys.stdin
        if stdin is not None:
            sys.stdin = io.StringIO(stdin)
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:                     # argparse's own errors
            code = e.code
        finally:
            sys.stdin = old_stdin
    return code, out.getvalue(), err.getvalue()


def subprocess_env(**extra) -> dict:
    """The environment for a subprocess of a test: this checkout first on the path (the subprocess
    runs in the test's own temporary folder, not in the repository), no GPT_DEBUG, plus ``extra``."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, PYTHONPATH=path, GPT_DEBUG="", **extra)


def run_subprocess(*argv, timeout=120):
    """``python -m gpt ARGV`` in a subprocess, in the current (temporary) folder: (exit code, stdout,
    stderr)."""
    result = subprocess.run([sys.executable, "-m", "gpt", *map(str, argv)], capture_output=True, text=True,
                            timeout=timeout, env=subprocess_env())
    return result.returncode, result.stdout, result.stderr


def check_one_line_error(code, stderr, *expected):
    """The command failed with a one-line error (no traceback) whose last line names every word of
    ``expected``."""
    assert code not in (0, None), stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    error = lines[-1] if lines else ""
    assert "error" in error, stderr
    for word in expected:
        assert word in error, (word, error)


def weights(directory):
    """The arrays of the newest checkpoint's model.safetensors in ``directory``."""
    step = (Path(directory) / "latest").read_text().strip()
    return safetensors.load_file(Path(directory) / step / "model.safetensors")


def assert_pretrain_resumes_exactly(args, tmp_path, monkeypatch, expect_param: str) -> list[dict]:
    """Run ``pretrain *args`` (4 steps) straight through, and again with Ctrl-C after step 2 then
    ``--resume``: both runs must end with the same weights (among them ``expect_param``) and losses.
    Returns the two runs' log.json contents (straight, stopped) for further checks."""
    code, _, stderr = run_cli(*args, "--out", tmp_path / "straight")
    assert code == 0, stderr
    with monkeypatch.context() as m:
        interrupt_at(m, 2)
        code, _, stderr = run_cli(*args, "--out", tmp_path / "stopped")
    assert code == 130, stderr
    code, _, stderr = run_cli("pretrain", "--resume", tmp_path / "stopped", "--quiet")
    assert code == 0, stderr
    a, b = weights(tmp_path / "stopped"), weights(tmp_path / "straight")
    assert list(a) == list(b) and expect_param in a
    for name in a:
        assert np.array_equal(a[name], b[name]), name
    logs = [json.loads((tmp_path / run / "log.json").read_text()) for run in ("straight", "stopped")]
    assert logs[0]["train_losses"] == logs[1]["train_losses"]
    return logs


def interrupt_at(monkeypatch, step, trainer_class=Trainer):
    """Deliver a real SIGINT to this process right after training step ``step`` (the CLI's handler
    is installed then), as a user pressing Ctrl-C would."""
    real = trainer_class.train_step

    def train_step(self, *args):
        loss = real(self, *args)
        if self.state.step == step:
            signal.raise_signal(signal.SIGINT)
        return loss

    monkeypatch.setattr(trainer_class, "train_step", train_step)


def alpaca_chat_answer(model, tokenizer, entry: dict, max_new_tokens: int) -> str:
    """What ``python -m gpt chat --checkpoint`` prints for one instruction entry: the greedy
    continuation of chapter 7's prompt and its ``### Response:`` header until <|endoftext|>, with
    the surrounding whitespace stripped."""
    import numpy as np

    from gpt.finetune.instruct import RESPONSE_HEADER, format_input
    from gpt.generate import encode_as_text, generate

    prompt = encode_as_text(tokenizer, format_input(entry) + RESPONSE_HEADER)
    out = generate(model, np.asarray([prompt]), max_new_tokens, temperature=0.0, eos_id=tokenizer.eot_token)
    return tokenizer.decode(out[0, len(prompt):].tolist()).strip()
