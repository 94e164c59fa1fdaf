"""Verifiable instructions: the constraints, their programmatic checker, and the prompt-set builder.

A held-out metric that no judge sees: each prompt is an everyday request plus one instruction whose
compliance a few lines of Python can decide (a word limit, a required word, lowercase only, an exact
number of bullets, a closing phrase ...). The idea follows IFEval (Zhou et al. 2023); the instruction
kinds, their wording and their checks are our own.

Guarantees:
- :func:`check` is pure and deterministic; an unknown kind or a value of the wrong type is a
  :class:`~rlaif.errors.RecordError` naming the kind, never a silent pass or fail;
- :func:`build_prompt_sets` is deterministic for a seed: the held-out split is drawn over the base
  *requests*, so no held-out request appears in training with any instruction; instruction kinds are
  dealt round-robin from a seeded order, so every kind appears (nearly) equally often in each split;
- :func:`build_paraphrased_heldout` (``--paraphrased``) holds out wordings and values as well: the same
  held-out requests with every kind worded as in :data:`PARAPHRASES` and values no training prompt uses;
- :func:`pass_summary` reports the pass rate with a Wilson 95% interval and per-kind rates, and counts
  (never drops) prompts without instructions (comparing two evaluations is the task metric's
  :func:`rlaif.tasks.metric.paired_change`).

Non-guarantees: the checks are literal (``"- "`` and ``"* "`` bullets only; words are runs of letters,
digits and apostrophes), so a reply that a human would accept may fail; passing says nothing about the
quality of the content.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlaif.errors import ConfigError, RecordError
from rlaif.files import load_yaml_mapping

_WORD = re.compile(r"[A-Za-z0-9']+")
_BULLET = re.compile(r"^\s*[-*]\s+\S", re.MULTILINE)


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _lowercase(text: str, _value: Any) -> bool:
    return any(c.isalpha() for c in text) and not any(c.isupper() for c in text)


def _uppercase(text: str, _value: Any) -> bool:
    return any(c.isalpha() for c in text) and not any(c.islower() for c in text)


def _max_words(text: str, n: int) -> bool:
    return 0 < len(_words(text)) <= n


def _keyword(text: str, word: str) -> bool:
    return re.search(rf"\b{re.escape(word)}\b", text, re.IGNORECASE) is not None


def _no_commas(text: str, _value: Any) -> bool:
    return bool(text.strip()) and "," not in text and "\uff0c" not in text


def _bullets(text: str, n: int) -> bool:
    return len(_BULLET.findall(text)) == n


def _ends_with(text: str, phrase: str) -> bool:
    return text.rstrip().endswith(phrase)


def _starts_with(text: str, word: str) -> bool:
    return re.match(rf"\s*{re.escape(word)}\b", text) is not None


def _quoted(text: str, _value: Any) -> bool:
    t = text.strip()
    return len(t) > 2 and t[0] == '"' and t[-1] == '"'


def _title(text: str, _value: Any) -> bool:
    return re.search(r"<<[^<>\n]+>>", text) is not None


@dataclass(frozen=True)
class InstructionKind:
    """One kind of verifiable instruction: how it is worded, which values it takes, how it is checked."""

    name: str
    wording: str  # str.format template; ``{value}`` is the drawn value
    values: tuple  # the values the builder draws from; (None,) for kinds without a value
    check: Callable[[str, Any], bool]


KINDS: dict[str, InstructionKind] = {
    k.name: k
    for k in (
        InstructionKind(
            "lowercase",
            "Write your whole answer in lowercase letters, without any capital letters.",
            (None,),
            _lowercase,
        ),
        InstructionKind("uppercase", "Write your whole answer in capital letters only.", (None,), _uppercase),
        InstructionKind("max_words", "Answer in at most {value} words.", (10, 15, 20, 30), _max_words),
        InstructionKind(
            "keyword",
            'Use the word "{value}" in your answer.',
            ("because", "simple", "important", "always", "example", "together"),
            _keyword,
        ),
        InstructionKind("no_commas", "Do not use any commas in your answer.", (None,), _no_commas),
        InstructionKind(
            "bullets",
            "Answer with exactly {value} bullet points, each on its own line starting with '- '.",
            (2, 3, 4),
            _bullets,
        ),
        InstructionKind(
            "ends_with",
            'End your answer with the exact words "{value}" and write nothing after them.',
            ("That is all.", "Thank you.", "Have a nice day."),
            _ends_with,
        ),
        InstructionKind(
            "starts_with", 'Begin your answer with the word "{value}".', ("Yes", "Sure", "Well"), _starts_with
        ),
        InstructionKind("quoted", "Put your whole answer inside double quotation marks.", (None,), _quoted),
        InstructionKind(
            "title", "Give your answer a title in double angle brackets, like <<my title>>.", (None,), _title
        ),
    )
}


# Held-out wordings and values: a second held-out set asks for the same kinds of constraint in other
# words and with values that no training prompt uses (the training values are KINDS[...].values), so it
# measures whether a policy learned the constraint or the training sentence.
PARAPHRASES: dict[str, tuple[str, tuple]] = {
    "lowercase": ("Use only small letters in your reply; no capital letters at all.", (None,)),
    "uppercase": ("Type every letter of your reply as a capital letter.", (None,)),
    "max_words": ("Use no more than {value} words in your reply.", (12, 25)),
    "keyword": (
        'Make sure the word "{value}" appears somewhere in your reply.',
        ("careful", "usually", "good"),
    ),
    "no_commas": ("Avoid the comma character entirely in your reply.", (None,)),
    "bullets": ("Reply with a list of exactly {value} lines, each beginning with '- '.", (5, 6)),
    "ends_with": (
        'Finish your reply with the phrase "{value}" and add nothing after it.',
        ("See you soon.", "Good luck.", "The end."),
    ),
    "starts_with": ('The very first word of your reply must be "{value}".', ("Okay", "Certainly", "So")),
    "quoted": ("Wrap your entire reply in double quotes.", (None,)),
    "title": ("Start with a title between double angle brackets, for example <<a title>>.", (None,)),
}


def _kind(spec: Any, where: str) -> tuple[InstructionKind, Any]:
    if not isinstance(spec, dict) or "kind" not in spec:
        raise RecordError(f"{where}: an instruction must be a mapping with a 'kind' (got {spec!r})")
    extra = set(spec) - {"kind", "value"}
    if extra:
        raise RecordError(f"{where}: unknown instruction field(s) {sorted(extra)}")
    kind = KINDS.get(spec["kind"])
    if kind is None:
        raise RecordError(f"{where}: unknown instruction kind '{spec['kind']}' (known: {', '.join(KINDS)})")
    value = spec.get("value")
    expected = type(kind.values[0])
    if not isinstance(value, expected) or isinstance(value, bool):
        raise RecordError(
            f"{where}: instruction '{kind.name}' needs a value of type {expected.__name__}, got {value!r}"
        )
    return kind, value


def describe(spec: dict, where: str = "instruction") -> str:
    """The sentence a prompt uses for ``spec`` (``{"kind": ..., "value": ...}``)."""
    kind, value = _kind(spec, where)
    return kind.wording.format(value=value)


def check(text: str, spec: dict, where: str = "instruction") -> bool:
    """Does ``text`` follow the instruction ``spec``?"""
    kind, value = _kind(spec, where)
    return bool(kind.check(text, value))


def check_all(text: str, specs: Iterable[dict], where: str = "instruction") -> bool:
    """A reply passes a prompt only if it follows every one of the prompt's instructions."""
    return all(check(text, s, where) for s in specs)


# -- does the reply answer the request at all? -----------------------------------------------------

# A reply can follow its instruction and still not answer: "<<my title>>", "Thank you." or a bare
# "SmolLM" pass `title`, `ends_with` and `max_words`. A policy trained on a signal that likes
# instruction words drifts to such replies (seen in Self-Rewarding), so the held-out metric also
# reports the replies that answer. Literal, like the checks above: at least MIN_ANSWER_WORDS words
# besides the text the instruction itself asks for, and one of the request's content words (or a word
# that starts like it: "sleep" -> "sleeping").
MIN_ANSWER_WORDS = 5
_STOP = frozenset(
    "about after all also and answer any are because before being but can could describe does explain "
    "for from give has have how into its just like make many may more most much not one our out some "
    "tell than that the their them then there these they this use was what when where which while who "
    "why with would you your".split()
)


def request_words(request: str) -> list[str]:
    """The request's content words (3+ letters, not a stop word), lowercased, in order, unique."""
    words = [w.lower().strip("'") for w in _words(request)]
    return list(dict.fromkeys(w for w in words if len(w) >= 3 and w not in _STOP and not w.isdigit()))


def answer_body(text: str, specs: Iterable[dict]) -> str:
    """``text`` without what its instructions supply: a ``<<title>>``, the required first word, the
    required closing phrase, the enclosing quotation marks and the bullet markers."""
    body = re.sub(r"<<[^<>\n]*>>", " ", text)
    for spec in specs:
        value = spec.get("value")
        if spec.get("kind") == "ends_with" and isinstance(value, str) and body.rstrip().endswith(value):
            body = body.rstrip()[: -len(value)]
        elif spec.get("kind") == "starts_with" and isinstance(value, str):
            body = re.sub(rf"^\s*{re.escape(value)}\b", " ", body)
    return body


def answers_request(text: str, request: str, specs: Iterable[dict] = ()) -> bool:
    """Does ``text`` answer ``request`` at all (see :data:`MIN_ANSWER_WORDS`)? Not a quality check."""
    body = [w.lower() for w in _words(answer_body(text, specs))]
    if len(body) < MIN_ANSWER_WORDS:
        return False
    wanted = request_words(request)
    stems = {w[: max(3, min(5, len(w) - 1))] for w in wanted}
    return not wanted or any(w.startswith(stem) for w in body for stem in stems)


# -- the prompt sets --------------------------------------------------------------------------------


# The shipped split: 40 of the 130 requests are held out, each with every instruction kind (400
# prompts: a paired sign test can then see a gain of a few points); the other 90 requests get 3
# instructions each for training.
HELDOUT_TASKS, TRAIN_PER_TASK, HELDOUT_PER_TASK = 40, 3, 10


def load_tasks(path: str | Path) -> list[str]:
    """The base requests: a YAML mapping with ``tasks: [str, ...]`` (unique, non-empty)."""
    path = Path(path)
    tasks = load_yaml_mapping(path, "task list").get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise ConfigError(f"{path}: expected a mapping with a non-empty 'tasks' list")
    for i, t in enumerate(tasks, start=1):
        if not isinstance(t, str) or not t.strip():
            raise ConfigError(f"{path}: tasks[{i}] must be a non-empty string")
    dupes = sorted({t for t in tasks if tasks.count(t) > 1})
    if dupes:
        raise ConfigError(f"{path}: duplicate task(s) {dupes[:3]}")
    return [t.strip() for t in tasks]


def build_prompt_sets(
    tasks: list[str],
    *,
    seed: int = 0,
    heldout_tasks: int = HELDOUT_TASKS,
    train_per_task: int = TRAIN_PER_TASK,
    heldout_per_task: int = HELDOUT_PER_TASK,
) -> tuple[list[dict], list[dict]]:
    """(train, held-out) prompt records in the ``jsonl`` prompt format: ``{id, prompt, instructions}``."""
    if not 0 < heldout_tasks < len(tasks):
        raise ConfigError(f"heldout_tasks must be between 1 and {len(tasks) - 1}, got {heldout_tasks}")
    for name, n in (("train_per_task", train_per_task), ("heldout_per_task", heldout_per_task)):
        if not 1 <= n <= len(KINDS):
            raise ConfigError(f"{name} must be between 1 and {len(KINDS)}, got {n}")
    rng = random.Random(seed)
    order = list(range(len(tasks)))
    rng.shuffle(order)
    held, train = sorted(order[:heldout_tasks]), sorted(order[heldout_tasks:])
    kinds = list(KINDS)
    rng.shuffle(kinds)

    def make(split: str, indices: list[int], per_task: int) -> list[dict]:
        out, dealt = [], 0
        for t in indices:
            for _ in range(per_task):
                kind = KINDS[kinds[dealt % len(kinds)]]
                dealt += 1
                spec = {"kind": kind.name, "value": rng.choice(kind.values)}
                out.append(
                    {
                        "id": f"if-{split}-{len(out):04d}",
                        "prompt": f"{tasks[t]} {describe(spec)}",
                        "task": tasks[t],
                        "instructions": [spec],
                    }
                )
        return out

    return make("train", train, train_per_task), make("heldout", held, heldout_per_task)


def build_paraphrased_heldout(
    tasks: list[str],
    *,
    seed: int = 0,
    heldout_tasks: int = HELDOUT_TASKS,
    heldout_per_task: int = HELDOUT_PER_TASK,
) -> list[dict]:
    """The held-out requests of :func:`build_prompt_sets` (same seed), each with instructions in the
    :data:`PARAPHRASES` wordings and held-out values: requests, wordings and values all unseen in training.

    Why a separate random stream: the shipped train and held-out files stay byte-identical."""
    _, held = build_prompt_sets(
        tasks, seed=seed, heldout_tasks=heldout_tasks, heldout_per_task=heldout_per_task
    )
    requests = list(dict.fromkeys(r["task"] for r in held))
    rng = random.Random(f"{seed}:paraphrased")
    kinds = list(PARAPHRASES)
    rng.shuffle(kinds)
    out, dealt = [], 0
    for task in requests:
        for _ in range(heldout_per_task):
            name = kinds[dealt % len(kinds)]
            dealt += 1
            wording, values = PARAPHRASES[name]
            spec = {"kind": name, "value": rng.choice(values)}
            _kind(spec, f"paraphrase '{name}'")  # the checker takes the held-out value
            out.append(
                {
                    "id": f"if-paraphrased-{len(out):04d}",
                    "prompt": f"{task} {wording.format(value=spec['value'])}",
                    "task": task,
                    "instructions": [spec],
                }
            )
    return out


def split_instruction(text: str) -> tuple[str, str] | None:
    """(request, instruction sentence) for a prompt built here (``"<request> <instruction>"``, shipped
    or paraphrased wording), or None when the text ends with no known instruction wording.

    Why: a judge that sees only the conversation (not the record's metadata) can still contrast the
    reply's likelihood with and without the instruction."""
    for wording in [k.wording for k in KINDS.values()] + [w for w, _ in PARAPHRASES.values()]:
        head, _, tail = wording.partition("{value}")
        pattern = re.escape(head) + ("(.+?)" + re.escape(tail) if "{value}" in wording else "")
        m = re.search(rf"\s({pattern})\s*$", text)
        if m and text[: m.start()].strip():
            return text[: m.start()].strip(), m.group(1)
    return None


def request_of(metadata: dict, messages: Iterable[Any]) -> str:
    """The bare request of an instruction prompt (``messages``: :class:`~rlaif.records.Message`): its
    ``task`` field where the set has one, else the last user turn without its instruction sentence (or
    the whole turn).

    Why: :func:`answers_request` needs the request without the instruction, and prompt files built
    elsewhere may not carry ``task``."""
    if isinstance(metadata.get("task"), str):
        return metadata["task"]
    last = next((m.content for m in reversed(list(messages)) if m.role == "user"), "")
    split = split_instruction(last)
    return split[0] if split else last


def write_prompt_sets(out_dir: str | Path, train: list[dict], heldout: list[dict]) -> tuple[Path, Path]:
    """Write ``train.jsonl`` and ``heldout.jsonl`` (one JSON object a line, stable key order)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = out / "train.jsonl", out / "heldout.jsonl"
    for path, rows in zip(paths, (train, heldout), strict=True):
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return paths


# -- scoring ----------------------------------------------------------------------------------------


def wilson_interval(passed: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a pass rate (sensible at 0 and 1, unlike the normal one)."""
    if total == 0:
        return (0.0, 1.0)
    p = passed / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def pass_summary(results: list[tuple[list[dict], bool]]) -> dict:
    """``results``: (instructions, passed) per sample. Pass rate, its 95% interval, rate per kind."""
    scored = [(specs, ok) for specs, ok in results if specs]
    passed = sum(ok for _, ok in scored)
    lo, hi = wilson_interval(passed, len(scored))
    per_kind: dict[str, list[int]] = {}
    for specs, ok in scored:
        for s in specs:
            per_kind.setdefault(s["kind"], [0, 0])
            per_kind[s["kind"]][0] += ok
            per_kind[s["kind"]][1] += 1
    return {
        "instruction_pass_rate": round(passed / len(scored), 4) if scored else None,
        "instruction_pass_ci95": [round(lo, 4), round(hi, 4)],
        "instruction_samples": len(scored),
        "instruction_unscored": len(results) - len(scored),
        "instruction_pass_by_kind": {k: round(v[0] / v[1], 4) for k, v in sorted(per_kind.items())},
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m rlaif.instructions OUT_DIR [--seed S]``: rebuild the shipped prompt sets."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m rlaif.instructions", description=main.__doc__)
    parser.add_argument("out_dir")
    parser.add_argument(
        "--tasks", default=str(Path(__file__).resolve().parents[1] / "prompts" / "instruction_tasks.yaml")
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--heldout-tasks", type=int, default=HELDOUT_TASKS, help="requests held out")
    parser.add_argument(
        "--train-per-task", type=int, default=TRAIN_PER_TASK, help="instructions per training request"
    )
    parser.add_argument(
        "--heldout-per-task", type=int, default=HELDOUT_PER_TASK, help="instructions per held-out request"
    )
    parser.add_argument(
        "--paraphrased", action="store_true",
        help="also write heldout_paraphrased.jsonl: the held-out requests with held-out wordings and values",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        train, held = build_prompt_sets(
            load_tasks(args.tasks), seed=args.seed, heldout_tasks=args.heldout_tasks,
            train_per_task=args.train_per_task, heldout_per_task=args.heldout_per_task,
        )  # fmt: skip
    except ConfigError as exc:
        print(f"error: {exc}")
        return 2
    paths = write_prompt_sets(args.out_dir, train, held)
    print(f"wrote {len(train)} train prompts to {paths[0]} and {len(held)} held-out prompts to {paths[1]}")
    if args.paraphrased:
        para = build_paraphrased_heldout(
            load_tasks(args.tasks), seed=args.seed, heldout_tasks=args.heldout_tasks,
            heldout_per_task=args.heldout_per_task,
        )  # fmt: skip
        path = Path(args.out_dir) / "heldout_paraphrased.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in para), encoding="utf-8")
        print(f"wrote {len(para)} held-out prompts with held-out wordings and values to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
