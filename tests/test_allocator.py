"""minigrad.allocator: after ``import minigrad`` a freed large array's memory stays in the process
(mapped, ready for the next array) instead of going back to the system;
``MINIGRAD_KEEP_FREED_MEMORY=0`` leaves malloc alone.

Each case runs in a fresh interpreter, because the malloc settings are process-wide."""
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="the settings are glibc's"
)

# Allocate and touch 64 MB, free it, and report how much of it is still resident. 64 MB is above
# glibc's largest automatic mmap threshold (32 MB), so by default it is unmapped on free.
SCRIPT = """
import numpy as np
import minigrad
from minigrad import allocator
def resident_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
before = resident_mb()
a = np.ones(1 << 24, dtype=np.float32)
del a
print(allocator.is_keeping_freed_memory(), resident_mb() - before)
"""


def run(setting):
    env = dict(os.environ)
    env.pop("MINIGRAD_KEEP_FREED_MEMORY", None)
    if setting is not None:
        env["MINIGRAD_KEEP_FREED_MEMORY"] = setting
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    keeping, kept_mb = out.stdout.split()
    return keeping == "True", float(kept_mb)


def test_import_keeps_freed_memory_for_reuse():
    keeping, kept_mb = run(None)
    assert keeping
    assert kept_mb > 60, f"only {kept_mb:.1f} MB of a freed 64 MB array stayed mapped for reuse"


@pytest.mark.parametrize("setting", ["0", "off"])
def test_environment_opts_out(setting):
    keeping, kept_mb = run(setting)
    assert not keeping
    assert kept_mb < 4, f"{kept_mb:.1f} MB of a freed 64 MB array stayed resident without the setting"

