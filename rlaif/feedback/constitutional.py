"""Constitutional AI (Bai et al., 2022) resources: the critique -> revision request pairs of SL-CAI.

The two Constitutional AI sources live in :mod:`rlaif.feedback.sl_cai` (critique -> revision chains)
and :mod:`rlaif.feedback.rl_cai` (principle-judged labels); this module loads the file SL-CAI draws
its requests and worked examples from (``prompts/cai_critique_revision_pairs.yaml`` by default).

Guarantees: a loaded set has at least one principle, unique ids and no empty field; a missing,
empty or unknown field is a ConfigError naming the file, the entry and the field; the set records
the file's content hash for provenance.
Non-guarantee: the wording of a critique and its revision request is not checked to match.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from rlaif.errors import ConfigError
from rlaif.feedback.resources import refuse_unknown, require_str, resolve_resource
from rlaif.files import load_yaml_mapping


class CritiqueRevisionPrinciple(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    critique: str
    revision: str


class CritiqueRevisionExample(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str
    response: str
    critique_request: str
    critique: str
    revision_request: str
    revision: str


class CritiqueRevisionSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    principles: list[CritiqueRevisionPrinciple]
    examples: list[CritiqueRevisionExample]
    path: str
    content_hash: str


def load_critique_revision_pairs(spec: str) -> CritiqueRevisionSet:
    """Load ``principles: [{id, critique, revision}]`` and optional ``examples``; a missing or empty
    field is an error naming the file, the entry and the field."""
    path, content_hash = resolve_resource(spec)
    raw = load_yaml_mapping(path, "prompt resource")
    unknown = set(raw) - {"name", "description", "principles", "examples"}
    if unknown:
        raise ConfigError(
            f"{path}: unknown field(s) {sorted(unknown)} (expected name, description, principles, examples)"
        )
    entries = raw.get("principles")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(
            f"{path}: field 'principles' must be a non-empty list of {{id, critique, revision}}"
        )
    principles, seen = [], set()
    for i, entry in enumerate(entries, start=1):
        where = f"{path}: principles[{i}]"
        fields = {k: require_str(entry, k, where) for k in ("id", "critique", "revision")}
        refuse_unknown(entry, fields, where)
        if fields["id"] in seen:
            raise ConfigError(f"{where}: duplicate id '{fields['id']}'")
        seen.add(fields["id"])
        principles.append(CritiqueRevisionPrinciple(**fields))
    examples = []
    raw_examples = raw.get("examples") or []
    if not isinstance(raw_examples, list):
        raise ConfigError(f"{path}: field 'examples' must be a list")
    for i, entry in enumerate(raw_examples, start=1):
        where = f"{path}: examples[{i}]"
        keys = list(CritiqueRevisionExample.model_fields)
        fields = {k: require_str(entry, k, where) for k in keys}
        refuse_unknown(entry, keys, where)
        examples.append(CritiqueRevisionExample(**fields))
    return CritiqueRevisionSet(
        name=str(raw.get("name") or path.stem), principles=principles, examples=examples,
        path=str(path), content_hash=content_hash,
    )  # fmt: skip
