"""Principle-conditioned choice judge (Constitutional AI preference labels).

Each comparison gets one principle drawn from a principles file, shown as the question the judge
answers ("Which reply is less harmful...?"). Both orders use the same principle. Soft labels come
from the normalised P(A), P(B) as in :mod:`rlaif.judges.pairwise`; chain-of-thought labels are
near 0/1, so with ``chain_of_thought=True`` they are clamped to [0.4, 0.6] unless told otherwise.

Guarantees: the draw depends only on ``seed`` and the item's id, so the same comparison gets the same
principle whatever else is in the batch (when ids are given; without ids an item's id includes its
position in the call); the principle's id is stored on every Judgment (``principle``) and its text in
``metadata``.

Principles file (YAML): ``principles:`` a list whose entries are either a string or a mapping with
``id`` and ``text``. A bare list at the top level works too.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rlaif.engines.base import Sampling
from rlaif.errors import TemplateError
from rlaif.judges.pairwise import PairwiseJudge
from rlaif.prompts import Template, find_data_file
from rlaif.records import derive_seed

DEFAULT_COT_CLAMP = (0.4, 0.6)


@dataclass(frozen=True)
class Principle:
    id: str
    text: str


def load_principles(spec: str | os.PathLike) -> list[Principle]:
    """Read a principles file by path, or by name from the prompts directories."""
    path = find_data_file(spec)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TemplateError(f"{path}: cannot read principles ({exc})") from None
    entries = data.get("principles") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise TemplateError(f"{path}: expected a non-empty list under 'principles'")
    out: list[Principle] = []
    for n, entry in enumerate(entries, start=1):
        if isinstance(entry, str) and entry.strip():
            out.append(Principle(id=f"p{n}", text=entry.strip()))
        elif isinstance(entry, dict) and isinstance(entry.get("text"), str) and entry["text"].strip():
            extra = set(entry) - {"id", "text"}
            if extra:
                raise TemplateError(f"{path}: principle {n}: unknown key(s) {', '.join(sorted(extra))}")
            out.append(Principle(id=str(entry.get("id", f"p{n}")), text=entry["text"].strip()))
        else:
            raise TemplateError(f"{path}: principle {n} must be a string or a mapping with 'text'")
    ids = [p.id for p in out]
    if len(set(ids)) != len(ids):
        raise TemplateError(f"{path}: principle ids must be unique")
    return out


class PrincipleJudge(PairwiseJudge):
    """A pairwise judge whose template also receives a sampled ``principle``."""

    kind = "principle"
    spec_kind = "principle"
    required_variables = ("prompt", "response_a", "response_b", "principle")

    def __init__(
        self,
        engine: Any,
        principles: str | os.PathLike = "cai_principles",
        template: str | os.PathLike | Template = "cai_principle_choice",
        chain_of_thought: bool = False,
        clamp: tuple[float, float] | None = None,
        seed: int = 0,
        both_orders: bool = True,
        sampling: Sampling | None = None,
        adapter: str | None = None,
        kind: str | None = None,
        guided: bool | None = None,
        calibrate: bool | None = None,
        self_check: str | None = None,
    ):
        self.principles = load_principles(principles)
        self.principles_source = str(principles)
        self.seed = seed
        super().__init__(
            engine,
            template=template,
            both_orders=both_orders,
            chain_of_thought=chain_of_thought,
            sampling=sampling,
            adapter=adapter,
            clamp=clamp,
            kind=kind,
            guided=guided,
            calibrate=calibrate,
            self_check=self_check,
        )
        if clamp is None and self.chain_of_thought:
            self.clamp = DEFAULT_COT_CLAMP

    def draw(self, key: str) -> Principle:
        """The principle for one comparison (deterministic in seed and item id)."""
        rng = random.Random(derive_seed(self.seed, "principle", key))
        return rng.choice(self.principles)

    def _extra_variables(self, keys: list[str], items: list) -> list[dict[str, Any]]:
        out = []
        for key in keys:
            p = self.draw(key)
            out.append({"principle": p.text, "_principle": p})
        return out

    def _principle_of(self, extra: dict[str, Any]) -> str | None:
        p = extra.get("_principle")
        return p.id if p is not None else None
