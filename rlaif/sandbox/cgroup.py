"""A memory cgroup per sandbox worker, and its count of out-of-memory kills (standard library only).

Why: rlimits are per process, so without a cgroup one run may use ``max_processes x memory_mb``.
The worker moves itself into a new memory cgroup of its own (cgroup v1, or v2 where the memory
controller is delegated to us) before it starts the zygote; everything the worker starts inherits
it, so the limit bounds a whole run, the kernel's OOM killer acts inside it only, and the test
driver tells an out-of-memory kill (``memory_exceeded``) from any other SIGKILL by the cgroup's
``oom_kill`` counter. Where no cgroup can be made (cgroup v2 without delegation, not root) the
reason is returned, never papered over; a run's total memory is then bounded only by the rlimits.
"""

from __future__ import annotations

import os


def setup_memory_cgroup(name: str, limit_bytes: int) -> tuple[str | None, str | None]:
    """Move this process into a new memory cgroup of its own, limited to ``limit_bytes``.

    Why: rlimits are per process, so without a cgroup one run may use ``max_processes x memory_mb``.
    Everything the worker starts inherits the cgroup, so the limit bounds a whole run; the kernel's
    OOM killer acts inside the cgroup only. Returns (the file with the ``oom_kill`` counter, None),
    or (None, the reason it is unavailable).
    """
    path = None
    try:
        v1 = v2 = None
        with open("/proc/self/cgroup") as fh:
            for line in fh:
                hid, controllers, rel = line.rstrip("\n").split(":", 2)
                if "memory" in controllers.split(","):
                    v1 = "/sys/fs/cgroup/memory" + rel
                elif hid == "0":
                    v2 = rel
        if v1 and os.path.exists(v1 + "/memory.limit_in_bytes"):
            path = f"{v1.rstrip('/')}/{name}"
            limit_file, events = "memory.limit_in_bytes", "memory.oom_control"
        elif v2 is not None:
            root = (
                "/sys/fs/cgroup"
                if os.path.exists("/sys/fs/cgroup/cgroup.controllers")
                else "/sys/fs/cgroup/unified"
            )
            base = root + v2.rstrip("/")
            with open(base + "/cgroup.subtree_control") as fh:
                if "memory" not in fh.read().split():
                    raise OSError("the memory controller is not delegated to our cgroup")
            path = f"{base}/{name}"
            limit_file, events = "memory.max", "memory.events"
        else:
            raise OSError("no memory cgroup hierarchy")
        os.mkdir(path)
        with open(f"{path}/{limit_file}", "w") as fh:
            fh.write(str(limit_bytes))
        with open(f"{path}/cgroup.procs", "w") as fh:
            fh.write(str(os.getpid()))
        return f"{path}/{events}", None
    except OSError as exc:
        if path is not None and os.path.isdir(path):
            try:
                os.rmdir(path)
            except OSError:
                pass
        return (
            None,
            f"no memory cgroup ({exc}): a run's total memory is bounded only by max_processes x memory_mb",
        )


def oom_kills(events_file: str | None) -> int:
    """The memory cgroup's count of out-of-memory kills (0 without a cgroup)."""
    if not events_file:
        return 0
    try:
        with open(events_file) as fh:
            for line in fh:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0
