"""Which host paths the sandbox's jail may map executable, and which extension modules it masks.

Plain path computations (no ``ctypes``, no mounts): the pool calls them once, in the parent, and
hands the result to every worker, which binds exactly these (:mod:`rlaif.sandbox.jail`).
Guarantees: only the system's binary and library directories and this interpreter's own
lib-dynload are listed as executable, so no extension module of another Python copy
(``/usr/lib/python3*``, site-/dist-packages) can be loaded in the jail; every raw-memory extension
module (:data:`MASKED_MODULES`) found in those directories is listed for masking. Not guaranteed:
a raw-memory module under a name not in :data:`MASKED_MODULES`.
"""

from __future__ import annotations

import glob
import os

MASKED_MODULES = (
    "_ctypes", "_ctypes_test", "_cffi_backend", "_testcapi", "_testinternalcapi", "_testmultiphase",
    "_testbuffer", "_testimportmultiple", "_testsinglephase", "_testclinic", "_xxtestfuzz",
)  # fmt: skip
# Where shared objects may be mapped executable inside the jail: the system's binaries and libraries
# (what an exec'd binary needs) and this interpreter's own extension modules. Every other bound path
# (other Pythons' lib-dynload, site-/dist-packages, anything a caller adds) is mounted noexec, so no
# extension module of any other copy can be loaded from it, whatever its name.
EXEC_DIRS = ["/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32", "/usr/bin", "/usr/sbin",
             "/usr/lib64", "/usr/lib32", "/usr/libexec"]  # fmt: skip


def own_dynload() -> str:
    """This interpreter's directory of extension modules (lib-dynload)."""
    import _json  # an extension module on every CPython build that ships lib-dynload

    path = getattr(_json, "__file__", None)
    if path:
        return os.path.dirname(os.path.realpath(path))
    import sysconfig

    return os.path.realpath(sysconfig.get_config_var("DESTSHARED") or "")


def exec_dirs() -> list[str]:
    """The directories mapped executable in the jail (those that exist on this machine)."""
    multiarch = glob.glob("/usr/lib/*-linux-gnu") + glob.glob("/lib/*-linux-gnu")
    plain = [p for p in EXEC_DIRS if not os.path.islink(p)]  # merged /usr: /lib is a link to /usr/lib
    out = [os.path.realpath(p) for p in plain + multiarch + [own_dynload()] if os.path.isdir(p)]
    return sorted(set(out))


def _is_masked_name(filename: str) -> bool:
    stem = filename.split(".", 1)[0]
    return stem in MASKED_MODULES and ".so" in filename


def masked_files(dirs: list[str] | None = None) -> list[str]:
    """Extension modules that give raw memory access (:data:`MASKED_MODULES`), wherever they lie in
    the directories that stay executable in the jail (they are bound over with ``/dev/null``)."""
    found = []
    for top in dirs if dirs is not None else exec_dirs():
        for root, _dirs, files in os.walk(top):
            found += [os.path.join(root, f) for f in files if _is_masked_name(f)]
    return sorted(set(found))
