"""Run a command so that its whole process tree dies with the parent of this process.

Why: a Ray actor that is killed (SIGKILL) cannot stop the ``vllm serve`` it started, and SIGKILL on
the API server alone (``PR_SET_PDEATHSIG``) orphans vLLM's engine-core process. This small process
sits between the two: the kernel sends it SIGTERM when its parent dies, and it then SIGKILLs its own
process group - the server and every process the server started.

Usage: ``python -m rlaif.engines.reaper CMD...`` started in a new session (its own process group).
Guarantees: Linux only (``prctl``); the command's exit status is passed on.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1


def main() -> int:
    cmd = sys.argv[1:]
    if not cmd:
        print("usage: python -m rlaif.engines.reaper CMD...", file=sys.stderr)
        return 2
    parent = os.getppid()
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda *_: os.killpg(0, signal.SIGKILL))
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.killpg(0, signal.SIGKILL)
    return subprocess.Popen(cmd).wait()


if __name__ == "__main__":
    sys.exit(main())
