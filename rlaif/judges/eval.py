"""Measure a judge against human-labelled preference pairs (``rlaif judge-eval``).

Inputs: Anthropic HH transcripts (``chosen``/``rejected`` full dialogues ``\\n\\nHuman: ...
\\n\\nAssistant: ...``, .jsonl or .jsonl.gz; chosen = the human preference) or plain JSONL rows
``{prompt, chosen, rejected}`` (prompt: text or a list of messages; chosen/rejected: text or a list
ending with the assistant turn).

Why the position is randomised: a single-order judge with a position bias would otherwise look
good or bad depending only on where the human-preferred response was shown. Each pair's placement of
the chosen response (as ``response_a`` or ``response_b``) is drawn from ``seed`` and the pair id.

Summary fields (all rates over the stated denominators; ``None`` where the denominator is 0):
- ``n``: pairs judged; ``valid``: pairs that got a label; ``invalid_rate`` = 1 - valid / n;
- ``agreement``: share of valid pairs where the judge prefers the human-chosen response (an exact
  0.5 tie counts one half; ``ties`` says how many);
- ``position_consistency``: share of pairs with both orders readable whose orders agree;
- ``first_position_win_rate``: share of readable single-order judgments preferring the response
  shown first (0.5 = no position bias; ties count one half);
- ``invalid_reasons``: counts of invalid judgments by reason (numbers replaced by N);
- ``skipped``: input records not judged and why (identical responses, unsplittable transcripts);
- ``agreement_ci95``: 95% Wilson interval of ``agreement`` over the valid pairs;
- ``self_check``: the judge's consistency self-check on the batch, where it ran one;
- ``baseline_shorter``: agreement (and its interval) of "prefer the shorter reply" on the same pairs.

``split_pairs`` keeps a seeded half of the pairs (``tune`` or ``eval``) so a judge can be tuned on
one half and reported on the other.

Pointwise judges are evaluated by scoring both responses; position fields are then ``None``.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlaif.errors import RecordError
from rlaif.records import Judgment, Message, iter_json_lines, stable_hash, write_jsonl

HUMAN, ASSISTANT = "\n\nHuman:", "\n\nAssistant:"
_TURN = re.compile(r"\n\n(Human|Assistant):")


@dataclass
class EvalPair:
    id: str
    line: int
    prompt: list[Message]
    chosen: str
    rejected: str


def parse_hh_dialogue(text: str) -> list[Message]:
    """``\\n\\nHuman: ... \\n\\nAssistant: ...`` into messages (user/assistant)."""
    parts = _TURN.split(text)
    if parts[0].strip():
        raise ValueError("text before the first 'Human:' turn")
    messages = []
    for speaker, content in zip(parts[1::2], parts[2::2], strict=True):
        messages.append(Message(role="user" if speaker == "Human" else "assistant", content=content.strip()))
    return messages


def split_hh_pair(chosen: str, rejected: str) -> tuple[list[Message], str, str]:
    """The shared dialogue (up to the last assistant turn both share) and the two final replies.

    The split is made at the last ``\\n\\nAssistant:`` inside the common prefix of the two
    transcripts, which is where they start to differ; a handful of HH rows differ earlier than
    their last turn, and this keeps everything after the split as the reply being judged.
    """
    common = 0
    limit = min(len(chosen), len(rejected))
    while common < limit and chosen[common] == rejected[common]:
        common += 1
    cut = chosen.rfind(ASSISTANT, 0, common)
    if cut < 0:
        raise ValueError("the two transcripts share no assistant turn to split at")
    messages = parse_hh_dialogue(chosen[:cut])
    if not messages or messages[-1].role != "user":
        raise ValueError("the shared dialogue does not end with a human turn")
    return messages, chosen[cut + len(ASSISTANT) :].strip(), rejected[cut + len(ASSISTANT) :].strip()


def _reply_text(value: Any, field: str, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and isinstance(value[-1], dict):
        last = value[-1]
        if last.get("role") == "assistant" and isinstance(last.get("content"), str):
            return last["content"]
    raise RecordError(
        f"{where}: field '{field}' must be text or a list of messages ending with an assistant turn"
    )


def load_eval_pairs(path: str | Path, limit: int | None = None) -> tuple[list[EvalPair], dict[str, Any]]:
    """Pairs to judge (at most ``limit``), and what was skipped with line numbers.

    A record missing fields or of the wrong type is a :class:`RecordError` naming file and line; a
    well-formed record that cannot be judged (identical or empty replies) is skipped and counted.
    """
    path = Path(path)
    pairs: list[EvalPair] = []
    skipped: dict[str, list[int]] = {}
    for lineno, obj in iter_json_lines(path):
        if limit is not None and len(pairs) >= limit:
            break
        where = f"{path}:{lineno}"
        for field in ("chosen", "rejected"):
            if field not in obj:
                raise RecordError(f"{where}: missing field '{field}'")
        pair_id = str(obj.get("id", f"{path.name}:{lineno}"))
        if "prompt" in obj:
            messages = _prompt_messages(obj["prompt"], where)
            chosen = _reply_text(obj["chosen"], "chosen", where)
            rejected = _reply_text(obj["rejected"], "rejected", where)
        elif isinstance(obj["chosen"], str) and isinstance(obj["rejected"], str):
            if not obj["chosen"].lstrip("\n").startswith("Human:"):
                raise RecordError(
                    f"{where}: no 'prompt' field and 'chosen' is not an HH transcript ('\\n\\nHuman: ...')"
                )
            try:
                messages, chosen, rejected = split_hh_pair(obj["chosen"], obj["rejected"])
            except ValueError as exc:
                skipped.setdefault(f"unsplittable transcript: {exc}", []).append(lineno)
                continue
        else:
            raise RecordError(f"{where}: fields 'chosen' and 'rejected' must be text")
        if not chosen.strip() or not rejected.strip():
            skipped.setdefault("empty reply", []).append(lineno)
            continue
        if chosen.strip() == rejected.strip():
            skipped.setdefault("identical replies", []).append(lineno)
            continue
        pairs.append(EvalPair(id=pair_id, line=lineno, prompt=messages, chosen=chosen, rejected=rejected))
    return pairs, {reason: {"count": len(lines), "lines": lines[:20]} for reason, lines in skipped.items()}


SPLITS = ("tune", "eval")


def split_pairs(pairs: list[EvalPair], split: str, seed: int) -> list[EvalPair]:
    """The seeded half ``split`` of ``pairs``: a pair is in ``tune`` when hash(seed, id) is even."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    want = 0 if split == "tune" else 1
    return [p for p in pairs if int(stable_hash("judge-split", str(seed), p.id), 16) % 2 == want]


def _credit(p: float) -> float:
    return 1.0 if p > 0.5 else 0.5 if p == 0.5 else 0.0


def _rate(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 6) if values else None


def _reason_class(reason: str | None) -> str:
    """Group reasons that differ only in numbers or in the token the model happened to sample."""
    text = re.sub(r" \(sampled .*?\)", "", reason or "unknown")
    return re.sub(r"\d+(\.\d+)?", "N", text)[:160]


def run_judge_eval(
    judge: Any,
    pairs: list[EvalPair],
    out: str | Path | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Judge every pair (one batched call per judge round), write all judgments, return the summary."""
    chosen_is_a = [random.Random(stable_hash("judge-eval", str(seed), p.id)).random() < 0.5 for p in pairs]
    ids = [p.id for p in pairs]
    records: list[Judgment] = []
    p_chosen: list[float | None] = []
    consistency: list[float] = []
    first_wins: list[float] = []

    if judge.slot == "compare":
        items = [
            (p.prompt, p.chosen, p.rejected) if ca else (p.prompt, p.rejected, p.chosen)
            for p, ca in zip(pairs, chosen_is_a, strict=True)
        ]
        results = judge.compare(items, ids=ids)
        for pair, ca, res in zip(pairs, chosen_is_a, results, strict=True):
            p_chosen.append(None if res.prob_a is None else (res.prob_a if ca else 1.0 - res.prob_a))
            if res.consistent is not None:
                consistency.append(1.0 if res.consistent else 0.0)
            for j in res.judgments:
                first = j.metadata.get("p_first_shown")
                if j.status == "ok" and first is not None:
                    first_wins.append(_credit(first))
                records.append(_tag(j, pair, "a" if ca else "b"))
        mode = "pairwise"
    elif judge.slot == "score":
        items = [(p.prompt, text) for p in pairs for text in (p.chosen, p.rejected)]
        results = judge.score(items, ids=[f"{p.id}#{side}" for p in pairs for side in ("chosen", "rejected")])
        for k, pair in enumerate(pairs):
            rc, rr = results[2 * k], results[2 * k + 1]
            if rc.mean_score is None or rr.mean_score is None:
                p_chosen.append(None)
            else:
                diff = rc.mean_score - rr.mean_score
                p_chosen.append(1.0 if diff > 0 else 0.0 if diff < 0 else 0.5)
            records += [_tag(j, pair, "chosen") for j in rc.judgments]
            records += [_tag(j, pair, "rejected") for j in rr.judgments]
        mode = "pointwise"
    else:
        raise TypeError(f"{judge!r} has neither .compare nor .score")

    if out is not None:
        write_jsonl(out, records)
    valid = [p for p in p_chosen if p is not None]
    check = getattr(judge, "last_self_check", None)
    first_record = records[0] if records else None
    return {
        "n": len(pairs),
        "valid": len(valid),
        "invalid_rate": round(1 - len(valid) / len(pairs), 6) if pairs else None,
        "agreement": _rate([_credit(p) for p in valid]),
        "agreement_ci95": _interval(sum(_credit(p) for p in valid), len(valid)),
        "position_consistency": _rate(consistency) if mode == "pairwise" else None,
        "first_position_win_rate": _rate(first_wins) if mode == "pairwise" else None,
        "ties": sum(1 for p in valid if p == 0.5),
        "mean_prob_chosen": _rate(valid),
        "pairs_with_both_orders_valid": len(consistency),
        "judgments": len(records),
        "judgments_valid": sum(1 for j in records if j.status == "ok"),
        "invalid_reasons": dict(
            Counter(_reason_class(j.invalid_reason) for j in records if j.status != "ok").most_common()
        ),
        "mode": mode,
        "baseline_shorter": shorter_baseline(pairs),
        "self_check": check.as_dict() if check is not None else None,
        "judge_model": first_record.judge_model if first_record else None,
        "template": first_record.template if first_record else None,
        "template_hash": first_record.template_hash if first_record else None,
    }


def shorter_baseline(pairs: list[EvalPair]) -> dict[str, Any]:
    """A judge with no model: prefer the shorter reply (in characters; equal lengths count one half).

    Reported next to every judge on the same pairs, so a judge that only tracks length shows it.
    """
    credit = [
        1.0 if len(p.chosen) < len(p.rejected) else 0.5 if len(p.chosen) == len(p.rejected) else 0.0
        for p in pairs
    ]
    return {
        "n": len(pairs),
        "agreement": _rate(credit),
        "agreement_ci95": _interval(sum(credit), len(credit)),
    }


# -- pointwise validity on unlabelled responses (e.g. MT-Bench answers from `rlaif generate`) ------
def _prompt_messages(prompt, where: str) -> list[Message]:
    """A record's 'prompt' (text, or a list of messages) as messages; a clear error naming the line."""
    try:
        if isinstance(prompt, str):
            return [Message(role="user", content=prompt)]
        return [Message.model_validate(m) for m in prompt]
    except Exception:
        raise RecordError(f"{where}: field 'prompt' must be text or a list of messages") from None


def load_responses(path: str | Path, limit: int | None = None) -> list[tuple[list[Message], str]]:
    """(conversation, response) items from ``rlaif generate --out`` rows (every completion of a row)."""
    path = Path(path)
    items: list[tuple[list[Message], str]] = []
    for lineno, obj in iter_json_lines(path):
        where = f"{path}:{lineno}"
        prompt, completions = obj.get("prompt"), obj.get("completions")
        if not isinstance(completions, list) or not completions:
            raise RecordError(
                f"{where}: needs a non-empty 'completions' list (the output of rlaif generate --out)"
            )
        messages = _prompt_messages(prompt, where)
        for k, comp in enumerate(completions):
            text = comp.get("text") if isinstance(comp, dict) else None
            if not isinstance(text, str):
                raise RecordError(f"{where}: completion {k} has no 'text'")
            items.append((messages, text))
        if limit is not None and len(items) >= limit:
            return items[:limit]
    return items


def run_pointwise_validity(
    judge: Any, items: list[tuple[list[Message], str]], out: str | Path | None = None
) -> dict[str, Any]:
    """Score every response once per judge sample; report how many judgments could be read."""
    if judge.slot != "score":
        raise TypeError("pointwise validity needs a pointwise judge (one with .score)")
    results = judge.score(items, ids=[f"response-{k}" for k in range(len(items))])
    records = [j for r in results for j in r.judgments]
    if out is not None:
        write_jsonl(out, records)
    scores = [r.mean_score for r in results if r.mean_score is not None]
    ok = sum(1 for j in records if j.status == "ok")
    return {
        "mode": "pointwise_validity",
        "responses": len(items),
        "responses_scored": len(scores),
        "judgments": len(records),
        "judgments_valid": ok,
        "valid_rate": round(ok / len(records), 6) if records else None,
        "valid_rate_ci95": _interval(ok, len(records)),
        "mean_score": _rate(scores),
        "score_histogram": dict(sorted(Counter(str(round(s)) for s in scores).items())),
        "invalid_reasons": dict(
            Counter(_reason_class(j.invalid_reason) for j in records if j.status != "ok").most_common()
        ),
        "template": records[0].template if records else None,
    }


def _interval(successes: float, n: int) -> list[float] | None:
    from rlaif.judges.calibration import wilson_interval

    ci = wilson_interval(successes, n)
    return None if ci is None else [round(x, 6) for x in ci]


def _tag(j: Judgment, pair: EvalPair, position: str) -> Judgment:
    meta = {**j.metadata, "pair_id": pair.id, "pair_line": pair.line}
    meta["chosen_is" if position in ("a", "b") else "response_is"] = position
    return j.model_copy(update={"metadata": meta})
