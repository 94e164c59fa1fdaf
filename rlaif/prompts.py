"""Prompt templates: Jinja2 files with a small YAML front matter, found by name or by path.

A template file looks like::

    ---
    name: pairwise
    description: One line saying what the prompt is for.
    variables: [prompt, response_a, response_b]     # required; rendering without one is an error
    parser: {type: choice, labels: [A, B]}          # optional: how a judge reads the model's answer
                                                    # (``parser: choice`` / ``parser: score``: defaults)
    judge: pairwise                                 # optional: pointwise | pairwise | principle
    format: chat                                    # optional: chat (one user turn, default) | text
    ---
    Jinja2 body ...

Why files and not Python strings: users copy a shipped template, edit the wording, and point a judge at
the copy; the template's ``content_hash`` (sha256 of the whole file) goes into every judgment, so a
changed prompt is visible in the records.

Lookup order for a name: the directories in ``RLAIF_PROMPTS_PATH`` (``os.pathsep``-separated, user
templates shadow shipped ones), then the repository's ``prompts/`` directory (editable install), then
``rlaif/_prompts/`` (a copy shipped inside a wheel, where the build provides one). Anything that is an
existing file path is loaded as is.

Guarantees:
- front matter is validated (unknown keys are errors; free-form extras go under ``metadata``);
- rendering uses ``StrictUndefined``: a declared variable that is missing, or an undeclared one the body
  uses, raises :class:`TemplateError` naming the template and the variable;
- two templates with the same name in one directory level of the search path are an error, never a
  silent pick.

Non-guarantees: the rendered text is not checked against any model's context length here (judges do
that where the engine can count tokens). A file whose front matter does not load has no known name:
a lookup by file stem still finds it (and reports its error), but a lookup by front-matter name skips
it, so a broken copy meant to shadow a template under another file name does not shadow it;
``rlaif prompts list`` names every such file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rlaif.errors import TemplateError, describe_validation_error
from rlaif.records import stable_hash

TEMPLATE_SUFFIXES = (".j2", ".jinja")
DATA_SUFFIXES = (".yaml", ".yml", ".json", ".txt")
REPO_PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
PACKAGED_PROMPTS_DIR = Path(__file__).resolve().parent / "_prompts"


# -- parser specifications (pure data; the parsing itself lives in rlaif.judges.parsers) -----------
class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScoreParserSpec(_Spec):
    """A number read from the text with a regex whose first group is the number.

    ``multiple`` says what to do when the pattern matches more than once with different numbers:
    ``reject`` (default) makes the judgment invalid, ``last``/``first`` take that one. Repeats of
    the same number are never ambiguous.
    """

    type: Literal["score"] = "score"
    pattern: str = r"Score:\s*(-?\d+(?:\.\d+)?)"
    min: float | None = None
    max: float | None = None
    multiple: Literal["reject", "last", "first"] = "reject"

    @field_validator("pattern")
    @classmethod
    def _one_group(cls, v: str) -> str:
        try:
            compiled = re.compile(v)
        except re.error as exc:
            raise ValueError(f"not a valid regex: {exc}") from None
        if compiled.groups < 1:
            raise ValueError("the pattern needs one capturing group around the number")
        return v


class ChoiceParserSpec(_Spec):
    """One of a fixed set of labels.

    ``source: logprobs`` reads the labels' probabilities from the top-k alternatives of the answer
    token (soft labels); ``text`` reads the label from the generated text. ``marker`` (e.g.
    ``"Answer:"``) says the answer follows the last occurrence of that string (chain-of-thought
    templates); without it the answer is the start of the output.
    """

    type: Literal["choice"] = "choice"
    labels: list[str] = Field(default_factory=lambda: ["A", "B"], min_length=2)
    source: Literal["logprobs", "text"] = "logprobs"
    marker: str | None = None

    @field_validator("labels")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        v = [str(x) for x in v]
        if len(set(v)) != len(v) or any(not x.strip() for x in v):
            raise ValueError("labels must be distinct and non-empty")
        return v


class JsonParserSpec(_Spec):
    """A JSON object validated by a pydantic model named ``"package.module:Model"``.

    ``score_field`` / ``choice_field`` name the field that carries the judgment's score or choice.
    With an engine that supports guided decoding the model's JSON schema constrains generation.
    """

    type: Literal["json"] = "json"
    schema_: str = Field(alias="schema")
    score_field: str | None = None
    choice_field: str | None = None
    labels: list[str] | None = None
    min: float | None = None
    max: float | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


ParserSpec = Annotated[ScoreParserSpec | ChoiceParserSpec | JsonParserSpec, Field(discriminator="type")]


class FrontMatter(_Spec):
    name: str
    description: str = ""
    variables: list[str] = Field(default_factory=list)
    parser: ParserSpec | None = None
    judge: Literal["pointwise", "pairwise", "principle"] | None = None
    format: Literal["chat", "text"] = "chat"
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("parser", mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        """``parser: score`` / ``parser: choice`` mean that parser with its defaults."""
        if isinstance(v, str):
            if v == "json":
                raise ValueError(
                    "'parser: json' needs a schema: write parser: {type: json, schema: pkg.mod:Model}"
                )
            if v not in ("score", "choice"):
                raise ValueError(f"unknown parser '{v}' (use score, choice, or a mapping with 'type')")
            return {"type": v}
        return v


# -- templates -------------------------------------------------------------------------------------
_FRONT = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)


class Template:
    """A loaded template. ``content_hash`` covers the whole file (front matter and body)."""

    def __init__(self, path: Path, text: str):
        self.path = path
        self.text = text
        m = _FRONT.match(text)
        if not m:
            raise TemplateError(f"{path}: missing front matter (the file must start with a '---' block)")
        try:
            raw = yaml.safe_load(m.group(1)) or {}
        except yaml.YAMLError as exc:  # one line: the problem and where (the front matter starts at line 2)
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 2}" if mark is not None else str(path)
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise TemplateError(f"{where}: front matter is not valid YAML ({problem})") from None
        if not isinstance(raw, dict):
            raise TemplateError(f"{path}: front matter must be a mapping of keys to values")
        try:
            self.front = FrontMatter.model_validate(raw)
        except ValidationError as exc:
            problem = describe_validation_error(exc, limit=1, root="(front matter)")
            raise TemplateError(f"{path}: front matter {problem}") from None
        self.body = text[m.end() :]
        self.content_hash = stable_hash(text)

    name = property(lambda self: self.front.name)
    description = property(lambda self: self.front.description)
    variables = property(lambda self: list(self.front.variables))
    parser = property(lambda self: self.front.parser)
    judge_kind = property(lambda self: self.front.judge)
    format = property(lambda self: self.front.format)
    metadata = property(lambda self: self.front.metadata)

    @cached_property
    def _compiled(self):
        import jinja2

        env = jinja2.Environment(
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=False,
            autoescape=False,
        )
        try:
            return env.from_string(self.body)
        except jinja2.TemplateSyntaxError as exc:
            # +front-matter lines so the number points into the file, not the body
            line = (exc.lineno or 0) + self.text[: len(self.text) - len(self.body)].count("\n")
            raise TemplateError(f"{self.path}:{line}: template syntax error: {exc.message}") from None

    def render(self, **variables: Any) -> str:
        """Render with the given variables; every declared variable must be given.

        The text is returned exactly as rendered (a single newline at the end of the file is
        dropped, as Jinja does), because for ``format: text`` prompts the last characters decide
        what the model writes next.
        """
        import jinja2

        missing = [v for v in self.variables if v not in variables]
        if missing:
            raise TemplateError(
                f"template '{self.name}' ({self.path}): missing variable(s) {', '.join(missing)}"
            )
        try:
            return self._compiled.render(**variables)
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"template '{self.name}' ({self.path}): {exc.message}") from None

    def used_variables(self) -> list[str]:
        """The names the body reads from its caller (loop and ``set`` variables excluded)."""
        from jinja2 import meta

        return sorted(meta.find_undeclared_variables(self._compiled.environment.parse(self.body)))

    def check(self) -> None:
        """Compile the body now (a syntax error raises :class:`TemplateError` naming file and line),
        instead of at the first render."""
        _ = self._compiled

    def __repr__(self) -> str:
        return f"Template({self.name!r}, {str(self.path)!r})"


def check_template_variables(name: str, supplied: Collection[str], required: Collection[str] = ()) -> str:
    """``name`` if the template it names renders with what its step supplies: a config field's check,
    so that a wrong name or a variable the step never gives fails when the run is validated, not when
    the step first renders it, perhaps an hour in. Raises ``ValueError`` (pydantic names the field).

    ``supplied``: every variable the step passes; ``required``: those a template must declare to be of
    use (a repair request that never shows the report)."""
    try:
        template = load_template(name)
        template.check()
    except TemplateError as exc:
        raise ValueError(str(exc)) from None
    where = f"template '{template.name}' ({template.path})"
    offered = ", ".join(sorted(supplied)) or "nothing"
    unknown = [v for v in template.variables if v not in supplied]
    if unknown:
        raise ValueError(
            f"{where} declares {', '.join(unknown)}, which this step does not supply (it supplies {offered})"
        )
    undeclared = [v for v in template.used_variables() if v not in template.variables]
    if undeclared:
        raise ValueError(
            f"{where}: the body uses {', '.join(undeclared)} without declaring it under 'variables'"
        )
    missing = [v for v in required if v not in template.variables]
    if missing:
        them = "it" if len(missing) == 1 else "them"
        raise ValueError(
            f"{where} does not declare {', '.join(missing)}, so the model would never see {them}"
        )
    return name


def search_path() -> list[Path]:
    """Directories searched for templates by name, first match wins."""
    dirs = [Path(p).expanduser() for p in os.environ.get("RLAIF_PROMPTS_PATH", "").split(os.pathsep) if p]
    dirs += [REPO_PROMPTS_DIR, PACKAGED_PROMPTS_DIR]
    seen, out = set(), []
    for d in dirs:
        key = d.resolve() if d.exists() else d
        if key not in seen and d.is_dir():
            seen.add(key)
            out.append(d)
    return out


def _template_files(directory: Path) -> list[Path]:
    return [p for p in sorted(directory.rglob("*")) if p.suffix in TEMPLATE_SUFFIXES and p.is_file()]


def _find_in_dir(directory: Path, name: str) -> Path | None:
    """The file whose stem is ``name``, else the one whose front matter says ``name``.

    Stems are tried first so that one broken file elsewhere in the directory does not stop the
    lookup of a good one. A file whose front matter does not load is skipped in the by-name pass (see
    the module's non-guarantees).
    """
    by_stem = [p for p in _template_files(directory) if p.stem == name]
    if len(by_stem) > 1:
        raise TemplateError(f"two templates named '{name}' in {directory}: {by_stem[0]} and {by_stem[1]}")
    if by_stem:
        return by_stem[0]
    by_name = []
    for path in _template_files(directory):
        try:
            if _load_file(path).name == name:
                by_name.append(path)
        except TemplateError:
            continue  # its name is unknown; `rlaif prompts list` names it
    if len(by_name) > 1:
        raise TemplateError(f"two templates named '{name}' in {directory}: {by_name[0]} and {by_name[1]}")
    return by_name[0] if by_name else None


def _load_file(path: Path) -> Template:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(f"{path}: cannot read template ({exc.strerror})") from None
    return Template(path, text)


def _looks_like_path(spec: str) -> bool:
    return os.sep in spec or "/" in spec or spec.endswith(TEMPLATE_SUFFIXES + DATA_SUFFIXES)


def load_template(name_or_path: str | os.PathLike) -> Template:
    """A template by name (see the module docstring for the search order) or by file path."""
    spec = str(name_or_path)
    path = Path(spec).expanduser()
    if path.is_file():
        return _load_file(path)
    if _looks_like_path(spec):
        raise TemplateError(f"template file not found: {spec}")
    for directory in search_path():
        found = _find_in_dir(directory, spec)
        if found is not None:
            return _load_file(found)
    templates, broken = scan_templates()
    known = ", ".join(t.name for t in templates) or "(none)"
    unreadable = f"; {len(broken)} file(s) could not be loaded, the first: {broken[0]}" if broken else ""
    raise TemplateError(f"no template named '{spec}' (known: {known}){unreadable}")


def scan_templates() -> tuple[list[Template], list[TemplateError]]:
    """(every template on the search path that loads and compiles, one error per file that does not).

    Why: one broken file (a user's edit in progress) must not hide the others. A name shadowed by an
    earlier directory is listed once; a broken file shadows nothing, since its name is unknown.
    """
    good: dict[str, Template] = {}
    broken: list[TemplateError] = []
    for directory in search_path():
        for path in _template_files(directory):
            try:
                tpl = _load_file(path)
                tpl.check()
            except TemplateError as exc:
                broken.append(exc)
                continue
            good.setdefault(tpl.name, tpl)
    return sorted(good.values(), key=lambda t: t.name), broken


def list_templates() -> list[Template]:
    """Every template on the search path; the first broken file raises its :class:`TemplateError`
    (:func:`scan_templates` lists around broken files)."""
    templates, broken = scan_templates()
    if broken:
        raise broken[0]
    return templates


def find_data_file(name_or_path: str | os.PathLike) -> Path:
    """A non-template prompt resource (principles, affixes) by path or by name without suffix."""
    spec = str(name_or_path)
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if not _looks_like_path(spec):
        for directory in search_path():
            for suffix in DATA_SUFFIXES:
                matches = sorted(directory.rglob(spec + suffix))
                if matches:
                    return matches[0]
    raise TemplateError(f"prompt data file not found: {spec} (searched {[str(d) for d in search_path()]})")


def list_data_files() -> list[Path]:
    out = []
    for directory in search_path():
        out += [p for p in sorted(directory.rglob("*")) if p.suffix in DATA_SUFFIXES and p.is_file()]
    return out
