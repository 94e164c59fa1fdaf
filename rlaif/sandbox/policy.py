"""Whether the sandbox may run untrusted code with the isolation this machine offers.

Why a refusal, not a warning: without root and without a user namespace nothing isolates the code
at all -- it would run as your own user, with your files, your network and your processes in reach.
So that case stops with one line naming what is missing, unless the user opts out explicitly
(``SandboxPool(allow_unisolated=True)``, ``rlaif eval-code --unsafe-no-isolation``, or the
environment variable ``RLAIF_SANDBOX_ISOLATION=none`` for every pool a process starts, e.g. the
RLCF stage of a pipeline). Plain logic, standard library only.
"""

from __future__ import annotations

import os

ENV_VAR = "RLAIF_SANDBOX_ISOLATION"


def opted_out(allow_unisolated: bool | None) -> bool:
    """The caller's explicit choice, else the environment's (``none`` opts out)."""
    if allow_unisolated is not None:
        return allow_unisolated
    return os.environ.get(ENV_VAR, "").strip().lower() == "none"


def refusal(isolation: dict, warnings: list[str]) -> str | None:
    """Why untrusted code must not run with this isolation (None: it may).

    Isolated means a uid of its own (root) or a user namespace of its own (not root); the message
    quotes the first reason the worker gave for what it could not set up."""
    if isolation.get("uid_drop") or isolation.get("userns"):
        return None
    why = next((w for w in warnings if w.startswith(("no user namespace", "namespaces disabled"))), None)
    why = why or "not root and no namespace could be built"
    return (
        f"the sandbox refuses to run untrusted code without isolation: {why}. Opt out with "
        f"--unsafe-no-isolation (rlaif eval-code) or {ENV_VAR}=none to run it as your own user anyway"
    )
