"""Whether the sandbox may run untrusted code with the isolation this machine offers.

Why a refusal, not a warning: without root and without a user namespace nothing isolates the code
at all -- it would run as your own user, with your files, your network and your processes in reach.
So that case stops with one line naming what is missing, unless the user opts out explicitly
(``SandboxPool(allow_unisolated=True)``, ``rlaif eval-code --isolation none`` or
``--unsafe-no-isolation``, ``sandbox.isolation: none`` in a run config, or the environment variable
``RLAIF_SANDBOX_ISOLATION=none`` for every pool a process starts that was not told otherwise).
``required`` refuses whatever the environment says. Neither setting turns isolation off where the
machine offers it: ``none`` only allows running where there is none. Plain logic, standard library
only.
"""

from __future__ import annotations

import os

ENV_VAR = "RLAIF_SANDBOX_ISOLATION"
# what a user namespace must hold to count as isolation, and how the worker's warning about each begins
NEEDED = {
    "filesystem": "no filesystem jail",
    "pid_namespace": "no PID namespace",
    "network": "no network isolation",
}


MODES = ("required", "none")


def allow_unisolated(mode: str | None) -> bool | None:
    """A ``sandbox.isolation`` / ``--isolation`` value as the pool's ``allow_unisolated`` (None: not
    set, the environment decides); raises ValueError with one line for anything else."""
    if mode is None:
        return None
    if mode not in MODES:
        raise ValueError(f"isolation must be one of {', '.join(MODES)}, got {mode!r}")
    return mode == "none"


def opted_out(allow_unisolated: bool | None) -> bool:
    """The caller's explicit choice, else the environment's (``none`` opts out)."""
    if allow_unisolated is not None:
        return allow_unisolated
    return os.environ.get(ENV_VAR, "").strip().lower() == "none"


def refusal(isolation: dict, warnings: list[str]) -> str | None:
    """Why untrusted code must not run with this isolation (None: it may).

    As root the code gets a uid of its own, whatever else is missing (the warnings say what).
    Without root, a user namespace is only worth something with the jail, the PID and the network
    namespaces built inside it (a kernel may allow the namespace but no capability in it): else the
    code would see your files and processes as you. The message quotes the worker's own reason."""
    if isolation.get("uid_drop"):
        return None
    if isolation.get("userns"):
        missing = [k for k in NEEDED if not isolation.get(k)]
        if not missing:
            return None
        why = f"not root, and the user namespace could not provide {', '.join(missing)}"
        detail = next((w for w in warnings if w.startswith(tuple(NEEDED[k] for k in missing))), None)
        why += f" ({detail})" if detail else ""
    else:
        why = next((w for w in warnings if w.startswith(("no user namespace", "namespaces disabled"))), None)
        why = why or "not root and no namespace could be built"
    return (
        f"the sandbox refuses to run untrusted code without isolation: {why}. Opt out with "
        f"--unsafe-no-isolation (rlaif eval-code), sandbox.isolation: none (a run config) or {ENV_VAR}=none "
        "to run it as your own user anyway"
    )
