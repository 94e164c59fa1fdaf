"""Run a command so that its whole process tree dies with the parent of this process.

Why: a Ray actor that is killed cannot stop the ``vllm serve`` it started. SIGKILL on the API server
alone (``PR_SET_PDEATHSIG``) orphans vLLM's engine-core process, and Ray itself SIGKILLs the direct
children of a dying worker, so a direct child cannot clean up either. Hence two small processes in
the command's process group: the reaper (the direct child) and a sentinel (its child). The kernel
sends the reaper SIGTERM when its parent dies, and the sentinel SIGTERM when the reaper dies, however
it died; either then SIGKILLs the whole process group - the server and everything it started.

Usage: ``python -m rlaif.engines.reaper CMD...``, started in a new session (its own process group),
with ``RLAIF_REAPER_PARENT`` set to the starter's pid.
Guarantees: Linux only (``prctl``); the command's exit status is passed on.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1
PARENT_ENV = "RLAIF_REAPER_PARENT"  # set by the starter to its own pid (see _kill_group_when_parent_dies)


def _kill_group_when_parent_dies(parent: int) -> None:
    """``parent`` is the pid that started us, known by it: read from getppid() here, a parent that
    died before this line would already look like the init process."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda *_: os.killpg(0, signal.SIGKILL))
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.killpg(0, signal.SIGKILL)


def main() -> int:
    args = sys.argv[1:]
    if len(args) == 2 and args[0] == "--sentinel":
        _kill_group_when_parent_dies(int(args[1]))
        while True:
            signal.pause()
    if not args:
        print("usage: python -m rlaif.engines.reaper CMD...", file=sys.stderr)
        return 2
    _kill_group_when_parent_dies(int(os.environ.get(PARENT_ENV, os.getppid())))
    sentinel = subprocess.Popen(
        [sys.executable, "-m", "rlaif.engines.reaper", "--sentinel", str(os.getpid())]
    )
    code = subprocess.Popen(args).wait()
    sentinel.kill()
    sentinel.wait()
    return code


if __name__ == "__main__":
    sys.exit(main())
