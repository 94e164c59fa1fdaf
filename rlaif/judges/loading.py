"""One entry point for every judge: :func:`load_judge` (a name, a file, a function, a mapping or a spec).

Guarantees: the kind is decided by :func:`rlaif.judges.spec.judge_spec` only; an option the kind does
not take is a :class:`~rlaif.errors.ConfigError` naming what it takes. Non-guarantee: a Python judge's
values are checked when it runs.
"""

from __future__ import annotations

import inspect
from typing import Any

from rlaif.engines.base import Sampling
from rlaif.errors import ConfigError
from rlaif.judges.spec import build_judge, judge_spec


def load_judge(spec: Any, engine: Any, **kwargs: Any) -> Any:
    """A judge from a built-in name, a template file, ``"package.module:function"``, a mapping with
    ``template``/``kind`` and options, or a :data:`~rlaif.judges.spec.JudgeSpec`.

    ``kwargs`` are the kind's options (validated by its spec model: an option it does not take is a
    :class:`ConfigError`) or what a caller decides (``adapter``, ``seed``, ``principles``, a ready
    engine-level ``sampling``). The result has ``slot`` and ``.score(items)`` or ``.compare(items)``.
    """
    run = {k: kwargs.pop(k) for k in ("adapter", "seed", "principles") if k in kwargs}
    if isinstance(kwargs.get("sampling"), Sampling):
        run["sampling"] = kwargs.pop("sampling")
    if kwargs:
        base = judge_spec(spec, where=f"judge '{_name(spec)}'")
        spec = {**base.model_dump(exclude_unset=True), "kind": base.kind, "template": base.template, **kwargs}
    return build_judge(judge_spec(spec, where=f"judge '{_name(spec)}'"), engine, **run)


def from_template(judge_class: type, engine: Any, template: Any = None, **options: Any) -> Any:
    """A ``judge_class`` (e.g. :class:`~rlaif.judges.pairwise.PairwiseJudge`) built from Python through
    the judge spec: ``template`` (default: the class's own), the template's front-matter
    ``judge_options`` as defaults and ``options`` on top, all validated by the kind's model.

    Why: the spec is the only reader of a template's front matter, so the bare constructor takes none of
    its defaults (guided decoding, calibration, the likelihood descriptors); this is how Python code
    gets the settings a template ships with. ``options`` may also be what a caller decides
    (``adapter``, ``seed``, ``principles``, a ready ``sampling``)."""
    kind = getattr(judge_class, "spec_kind", "")
    if not kind:
        raise ConfigError(f"{judge_class.__name__} is not built from a template (no spec kind)")
    if template is None:
        template = inspect.signature(judge_class).parameters["template"].default
    return load_judge({"kind": kind, "template": template}, engine, **options)


def _name(spec: Any) -> str:
    if isinstance(spec, dict):
        return str(spec.get("template") or spec.get("kind"))
    return str(getattr(spec, "template", spec))
