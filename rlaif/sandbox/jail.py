"""Worker set-up: namespaces and the filesystem jail, done once per worker, and the work dir that is
renewed for every run (standard library only; mounts go through :mod:`rlaif.sandbox.syscalls`).

The worker (:mod:`rlaif.sandbox.worker`; in the host PID namespace) creates, where the kernel allows
-- as root directly, otherwise inside a user namespace of its own (:mod:`rlaif.sandbox.userns`):

- a network namespace (only a loopback device, left down: no connection anywhere, 127.0.0.1 included),
- IPC and UTS namespaces (the IPC objects in it are deleted after every run),
- a private mount namespace holding the jail: a read-only tmpfs root with read-only, nosuid, nodev,
  noexec bind mounts of the system directories and the standard library, bound again executable only
  for the system's binary and library directories and this interpreter's lib-dynload
  (:func:`rlaif.sandbox.jail_paths.exec_dirs`), ``/dev/{null,zero,random,urandom}``, and a
  size-limited noexec tmpfs at ``/tmp`` where each run gets a fresh work dir. The raw-memory
  extension modules (:data:`rlaif.sandbox.jail_paths.MASKED_MODULES`) found in the executable
  directories are bound over with ``/dev/null``;
- a PID namespace, whose first process is the zygote (:mod:`rlaif.sandbox.zygote`), the clean
  parent of every test process.

After every run the work dir is removed (the jail's whole tmpfs is replaced where removal fails;
without root the work dir itself stays -- the zygote's Landlock rule names it -- and everything in
the work tmpfs is removed) and the namespace's IPC objects are deleted. Without root and without a
user namespace nothing is built at all (the pool then refuses, :mod:`rlaif.sandbox.policy`). What could not be set up is reported as a warning and
in the isolation dict, never papered over.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from rlaif.sandbox import landlock, seccomp
from rlaif.sandbox.jail_paths import exec_dirs
from rlaif.sandbox.syscalls import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUTS,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    mount,
    remove_ipc_object,
    umount_detached,
    unshare,
)
from rlaif.sandbox.userns import enter_user_namespace, jail_extras


def _bind_readonly(src: str, dst: str, executable: bool) -> None:
    mount(src, dst, None, MS_BIND | MS_REC)
    flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | (0 if executable else MS_NOEXEC)
    mount(None, dst, None, flags)


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def build_jail(jail: str, readonly_paths: list[str], masked_files: list[str], tmp_mb: float,
               exec_paths: list[str] | None = None,
               extras: tuple[list[str], dict[str, str]] = ([], {})) -> None:  # fmt: skip
    """A tmpfs root with only read-only system directories, the standard library and ``/tmp``.

    Everything else (home directories, the project, data sets, /proc, the host's /tmp) is simply not
    there for the code under test. Only ``exec_paths`` may map code executable; ``/tmp`` is noexec,
    so a shared object the code writes itself cannot be loaded either. ``extras`` (user-namespace
    mode, where the zygote itself runs in the jail): files bound executable at their own path (the
    interpreter, ``libpython``) and directories bound read-only, noexec, at a path of their own.
    """
    exec_paths = exec_dirs() if exec_paths is None else exec_paths
    mount("tmpfs", jail, "tmpfs", MS_NOSUID, "size=4m,mode=0755")
    bound = []
    for path in readonly_paths:
        if not os.path.lexists(path):
            continue
        dst = jail + path
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.islink(path):
            os.symlink(os.readlink(path), dst)
            continue
        if os.path.isdir(path):
            os.makedirs(dst, exist_ok=True)
        else:
            open(dst, "w").close()
        _bind_readonly(path, dst, executable=False)
        bound.append(os.path.realpath(path))
    for path in exec_paths:  # bound again on top, executable this time
        if any(_under(path, top) for top in bound) and os.path.isdir(jail + path):
            _bind_readonly(path, jail + path, executable=True)
    _bind_extras(jail, *extras)
    for path in masked_files:  # ctypes, cffi, the C-API test modules: no raw memory access in the jail
        if os.path.exists(jail + path):
            mount("/dev/null", jail + path, None, MS_BIND)
    os.makedirs(jail + "/dev", exist_ok=True)
    for dev in ("null", "zero", "urandom", "random"):
        open(f"{jail}/dev/{dev}", "w").close()
        mount(f"/dev/{dev}", f"{jail}/dev/{dev}", None, MS_BIND)
    os.makedirs(jail + "/tmp", exist_ok=True)
    mount_work_tmpfs(jail, tmp_mb)
    mount(None, jail, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID)


def _bind_extras(jail: str, exec_files: list[str], dirs: dict[str, str]) -> None:
    for path in exec_files:
        dst = jail + path
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if not os.path.exists(dst):
            open(dst, "w").close()
        _bind_readonly(path, dst, executable=True)
    for inside, host in dirs.items():
        os.makedirs(jail + inside, exist_ok=True)
        _bind_readonly(host, jail + inside, executable=False)


def mount_work_tmpfs(jail: str, tmp_mb: float) -> None:
    size_kb = max(1024, int(tmp_mb * 1024))
    mount("tmpfs", jail + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
          f"size={size_kb}k,nr_inodes=16384,mode=0755")  # fmt: skip


def _work_dirs(cfg: dict, iso: dict) -> tuple[str, str]:
    """(the run's work dir as the worker sees it, as the test process sees it)."""
    if iso["filesystem"]:
        return cfg["jail_dir"] + "/tmp/run", "/tmp/run"
    if "_host_dir" not in cfg:  # one private parent per worker; the run dir inside it is renewed
        parent = tempfile.mkdtemp(prefix="rlaif-run-")
        os.chmod(parent, 0o711)  # the sandbox uid may pass through, not list it
        cfg["_host_dir"] = parent + "/run"
    return cfg["_host_dir"], cfg["_host_dir"]


def clear_work_dir(cfg: dict, iso: dict) -> None:
    """Remove what the last run left in its work dir. The usual case is ``shutil.rmtree`` (fd-based:
    planted symlinks are not followed); where that fails (3000 nested directories exhaust its
    recursion) the jail's whole tmpfs is replaced instead (detached: the kernel frees it at once),
    and without the jail ``rm -rf`` (no recursion limit) removes it."""
    host_dir, _ = _work_dirs(cfg, iso)
    if iso["userns"] and iso["filesystem"]:
        _empty_work_tmpfs(cfg["jail_dir"] + "/tmp")
        return
    if not os.path.lexists(host_dir):
        return
    try:
        shutil.rmtree(host_dir)
        return
    except (OSError, RecursionError):
        pass
    if iso["filesystem"]:
        jail = cfg["jail_dir"]
        umount_detached(jail + "/tmp")
        mount_work_tmpfs(jail, cfg["tmp_mb"])
    else:
        subprocess.run(["rm", "-rf", "--one-file-system", "--", host_dir], check=False,
                       env={"PATH": "/usr/bin:/bin"})  # fmt: skip
    if os.path.lexists(host_dir):
        raise OSError(f"could not remove the work dir {host_dir}")


def _empty_work_tmpfs(tmp: str) -> None:
    """Without root: empty the work tmpfs but keep ``run`` itself, the directory the zygote's
    Landlock rule names (the only place test processes may write); replacing the tmpfs would not
    reach the zygote's copy of the mount table. Without Landlock the code may have replaced ``run``
    (it owns ``/tmp`` there): then it is removed like anything else and made again. ``rm -rf``
    where ``rmtree`` fails (deep trees)."""
    for name in os.listdir(tmp):
        path = os.path.join(tmp, name)
        keep = name == "run" and os.path.isdir(path) and not os.path.islink(path)
        for target in [os.path.join(path, n) for n in os.listdir(path)] if keep else [path]:
            _remove(target)
    if not os.path.isdir(tmp + "/run"):
        os.mkdir(tmp + "/run", 0o700)
    os.chmod(tmp + "/run", 0o700)
    os.chmod(tmp, 0o755)


def _remove(target: str) -> None:
    try:
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)
        else:
            os.unlink(target)
    except (OSError, RecursionError):
        subprocess.run(["rm", "-rf", "--one-file-system", "--", target], check=False,
                       env={"PATH": "/usr/bin:/bin"})  # fmt: skip
    if os.path.lexists(target):
        raise OSError(f"could not remove {target} from the work dir")


def fresh_work_dir(cfg: dict, iso: dict) -> str:
    """A new, empty work dir for the next run (owned by the sandbox uid); returns its inner path."""
    clear_work_dir(cfg, iso)
    host_dir, inner_dir = _work_dirs(cfg, iso)
    if iso["userns"] and iso["filesystem"]:
        return inner_dir
    os.mkdir(host_dir, 0o700)
    if iso["uid_drop"]:
        os.chown(host_dir, iso["uid"], iso["uid"])
    return inner_dir


def remove_ipc_objects() -> int:
    """Remove every SysV shared memory segment, semaphore set and message queue of this IPC namespace
    (the worker's own: only its runs use it), so no run inherits or stays charged for another's."""
    removed = 0
    for kind in ("shm", "sem", "msg"):
        try:
            with open(f"/proc/sysvipc/{kind}") as fh:
                lines = fh.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 1 and fields[1].isdigit():
                removed += remove_ipc_object(kind, int(fields[1]))
    return removed


def setup_isolation(cfg: dict) -> tuple[dict, list[str]]:
    """Create the per-worker namespaces and jail; report exactly what is and is not in place.

    As root the sandboxed code gets a uid of its own; otherwise everything is built inside a user
    namespace of the worker's own (:mod:`rlaif.sandbox.userns`), where the kernel allows one."""
    iso = {"uid_drop": False, "userns": False, "network": False, "pid_namespace": False,
           "filesystem": False, "ipc": False, "seccomp": False, "landlock": False}  # fmt: skip
    iso["uid"] = None
    warnings: list[str] = []
    problem = seccomp.unavailable()
    iso["seccomp"] = problem is None
    if problem:
        warnings.append(problem)
    if os.geteuid() == 0 and cfg.get("uid") is not None:
        iso["uid_drop"], iso["uid"] = True, cfg["uid"]
    elif cfg.get("namespaces", True):
        try:
            enter_user_namespace()
            iso["userns"] = True
        except OSError as exc:
            warnings.append(f"no user namespace ({exc}): without root no namespace can be built")
    if not iso["uid_drop"]:
        warnings.append(
            "not running as root: sandboxed code runs as your own user (it can signal your processes, "
            "and read your files where no jail applies; the process limit counts all your processes)"
            if not iso["userns"]
            else "not running as root: sandboxed code runs as your own uid inside a user namespace "
            "(no memory cgroup; the PID namespace, the jail and the seccomp filter keep it from your "
            "processes and files)"
        )
    if not cfg.get("namespaces", True):
        warnings.append("namespaces disabled by configuration: no network, PID or filesystem isolation")
        return iso, warnings
    if os.geteuid() != 0 and not iso["userns"]:
        return iso, warnings
    _namespaces(cfg, iso, warnings)
    return iso, warnings


def _namespaces(cfg: dict, iso: dict, warnings: list[str]) -> None:
    """The network, IPC/UTS, mount (jail) and PID namespaces, each where the kernel allows it."""
    try:
        unshare(CLONE_NEWNET)
        iso["network"] = True
    except OSError as exc:
        warnings.append(
            f"no network isolation (unshare(CLONE_NEWNET) failed: {exc}): sandboxed code CAN use the network"
        )
    try:
        unshare(CLONE_NEWIPC | CLONE_NEWUTS)
        iso["ipc"] = True
        import socket

        socket.sethostname("sandbox")
    except OSError as exc:
        warnings.append(f"no IPC/UTS namespace ({exc})")
    if cfg.get("jail_dir"):
        try:
            unshare(CLONE_NEWNS)
            mount(None, "/", None, MS_REC | MS_PRIVATE)
            extras = jail_extras() if iso["userns"] else ([], {})
            build_jail(cfg["jail_dir"], cfg.get("readonly_paths", []), cfg.get("masked_files", []),
                       cfg["tmp_mb"], cfg.get("exec_paths"), extras)  # fmt: skip
            if iso["userns"]:  # one work dir for the worker's life: the zygote's Landlock rule names it
                os.mkdir(cfg["jail_dir"] + "/tmp/run", 0o700)
                iso["landlock"] = landlock.abi() >= 1
                if not iso["landlock"]:
                    warnings.append("no Landlock: the work tmpfs is emptied whole after every run instead")
            iso["filesystem"] = True
        except OSError as exc:
            warnings.append(f"no filesystem jail ({exc}): sandboxed code sees the host filesystem")
    try:
        unshare(CLONE_NEWPID)
        iso["pid_namespace"] = True
    except OSError as exc:
        warnings.append(f"no PID namespace ({exc}): background processes are killed by group and uid only")
