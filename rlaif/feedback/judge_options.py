"""A source's ``judge_options`` mapping turned into judge constructor arguments.

Guarantees: an option the source sets itself is refused (a value is never given twice); a
``sampling`` mapping is validated into the engine's :class:`~rlaif.engines.base.Sampling` (whose
temperature/top_p/max_tokens are the same fields as a config's ``sampling`` block, plus what only a
judge may need: seed, output constraints); a bad value is a one-line ConfigError naming the key.
Non-guarantee: other options are checked by the judge's constructor, not here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from rlaif.engines.base import Sampling
from rlaif.errors import ConfigError, describe_validation_error


def judge_kwargs(options: dict[str, Any], reserved: Sequence[str], where: str) -> dict[str, Any]:
    """Extra judge constructor arguments from a config mapping (``sampling`` may be a plain mapping)."""
    clash = sorted(set(options) & set(reserved))
    if clash:
        raise ConfigError(f"{where}: judge_options may not set {clash}; use the source's own fields")
    out = dict(options)
    if isinstance(out.get("sampling"), dict):
        try:
            out["sampling"] = Sampling.model_validate(out["sampling"])
        except ValidationError as exc:
            problem = describe_validation_error(exc, limit=1, prefix="judge_options.sampling.")
            raise ConfigError(f"{where}: {problem}") from None
    return out
