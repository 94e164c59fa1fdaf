"""Per-round held-out metric: the pass rate of the policy's replies on verifiable instructions.

No judge is involved: each held-out prompt lists its instructions in ``metadata["instructions"]`` (the
format :mod:`rlaif.instructions` writes), and :class:`rlaif.tasks.instruction.InstructionTask` decides
each reply; the pass rate is the instruction instance of the one verified metric (:mod:`rlaif.tasks.metric`).
The training signal of an instruction-following run (e.g. RLCD affixes) never calls the checker, so
this is a metric the loop cannot optimise directly.

Guarantees: sampling seeds derive from the run seed and the prompt id only (a re-run gives the same
replies; greedy by default); a held-out file in which no prompt carries instructions is an error, and
prompts without instructions are counted (``instruction_unscored``), never silently dropped; a
malformed instruction is an error naming the prompt. After training, the round is compared sample by
sample with the starting policy's evaluation (and with the previous round's, from round 2 on): how many
held-out samples newly pass, how many newly fail, and an exact sign test on those changes
(:func:`rlaif.tasks.metric.paired_change`), because overlapping per-round intervals can hide a
consistent paired gain.

A reply can pass its instruction without answering the request ("<<my title>>" passes a title
instruction), so every row also says whether the reply answers at all
(:func:`rlaif.instructions.answers_request`: enough words besides what the instruction supplies, and
one of the request's content words), and the metrics add ``instruction_answered_rate``,
``instruction_pass_answered_rate`` (passed AND answered) and its paired change
``instruction_answered_change_vs_<label>``. Non-guarantees: the p-value is per comparison, not
corrected for the number of rounds looked at; the answer check is literal (an answer that never uses
the request's words counts as not answering; a topical non-answer with five words counts as one).
"""

from __future__ import annotations

import json
from pathlib import Path

from rlaif.errors import ConfigError
from rlaif.instructions import answers_request, request_of
from rlaif.pipeline.inputs import load_prompt_source
from rlaif.pipeline.sampling import per_record_sampling
from rlaif.records import iter_json_lines, stable_hash
from rlaif.tasks.instruction import InstructionTask
from rlaif.tasks.metric import instruction_pass_rate_metric, paired_change


def instruction_eval(ctx, engine, rows: list[dict], compare: dict[str, Path] | None = None) -> dict:
    """Generate one reply per sample for every held-out prompt, check it, append rows, return metrics.

    ``compare``: label -> an earlier evaluation's ``samples.jsonl``; each that exists gives an
    ``instruction_change_vs_<label>`` entry (gained, lost, sign test). Each of ``more_sets`` is
    evaluated the same way, its rows marked with ``set`` and its metric names prefixed with the name.
    """
    opts = ctx.cfg.eval.instructions
    metrics = _one_set(ctx, engine, rows, None, opts.prompts, compare or {})
    for name, source in opts.more_sets.items():
        found = _one_set(ctx, engine, rows, name, source, compare or {})
        metrics.update({f"{name}_{k}": v for k, v in found.items()})
    return metrics


def _one_set(ctx, engine, rows: list[dict], name: str | None, source, compare: dict[str, Path]) -> dict:
    """One held-out set: replies, checks, rows (``set``: name, absent for the main set), metrics."""
    ev = ctx.cfg.eval
    opts = ev.instructions
    key = "eval.instructions.prompts" if name is None else f"eval.instructions.more_sets.{name}"
    prompts = load_prompt_source(source, key)
    if not any(p.metadata.get("instructions") for p in prompts):
        raise ConfigError(
            f"{key}: no prompt in {source.path} has 'instructions' "
            "(build the sets with `python -m rlaif.instructions OUT_DIR`)"
        )
    sampling = per_record_sampling(
        ctx.cfg.seed, "eval_instructions", [p.id for p in prompts],
        n=opts.samples, temperature=opts.temperature, max_tokens=ev.max_tokens,
    )  # fmt: skip
    metric = instruction_pass_rate_metric(InstructionTask(prompts))
    checked, metrics = metric.measure(engine, prompts, sampling)
    start = len(rows)
    for c in checked:
        p = c.record
        specs = p.metadata.get("instructions") or []
        rows.append(
            {
                "kind": "instructions",
                **({"set": name} if name else {}),
                "id": p.id,
                "sample": c.completion.index,
                "text": c.completion.text,
                "tokens": len(c.completion.token_ids or []),
                "instructions": p.metadata.get("instructions") or [],
                "prompt_hash": _prompt_hash(p),
                "passed": c.verdict.passed,
                "answered": answers_request(c.completion.text, request_of(p.metadata, p.messages), specs)
                if specs
                else None,
            }
        )
    scored = [r for r in rows[start:] if r["answered"] is not None]
    named = f" ({name})" if name else ""
    if scored:
        metrics["instruction_answered_rate"] = round(sum(r["answered"] for r in scored) / len(scored), 4)
        metrics["instruction_pass_answered_rate"] = round(
            sum(r["answered"] and r["passed"] for r in scored) / len(scored), 4
        )
        ctx.say(
            f"  held-out instructions{named}: {sum(not r['answered'] for r in scored)} of {len(scored)} "
            "replies do not answer the request (too few words of their own, or none of its words)"
        )
    for label, path in compare.items():
        if path is not None and Path(path).is_file():
            earlier = list(r for _, r in iter_json_lines(path))
            change = paired_change(_outcomes(earlier, name), _outcomes(rows, name))
            metrics[f"instruction_change_vs_{label}"] = change
            ctx.say(
                f"  held-out instructions{named} vs {label}: {change['gained']} newly "
                f"pass, {change['lost']} newly fail of {change['paired']} paired samples "
                f"(sign test p={change['sign_test_p']})"
            )
            strict = paired_change(
                _outcomes(earlier, name, answered=True), _outcomes(rows, name, answered=True)
            )
            metrics[f"instruction_answered_change_vs_{label}"] = strict
            ctx.say(
                f"  held-out instructions{named} vs {label}, passed AND answered: {strict['gained']} newly, "
                f"{strict['lost']} no longer of {strict['paired']} (sign test p={strict['sign_test_p']})"
            )
    return metrics


def _prompt_hash(p) -> str:
    return stable_hash(json.dumps([m.model_dump(mode="json") for m in p.messages], sort_keys=True))


def _outcomes(rows, name: str | None = None, answered: bool = False) -> dict[str, bool]:
    """``{"<prompt id>#<sample>#<prompt hash>": passed}`` for the instruction rows of an evaluation.

    The prompt's hash is in the key so that a held-out file rebuilt between two evaluations (same ids,
    other prompts) counts as unmatched instead of being paired by id. ``name``: which set (None: the
    main one). ``answered``: the outcome is passed AND answered; rows written before rows said whether
    they answer are left out (so they count as unmatched, never as failures)."""
    return {
        f"{r['id']}#{r['sample']}#{r.get('prompt_hash')}": bool(r["passed"]) and bool(r.get("answered"))
        if answered
        else bool(r["passed"])
        for r in rows
        if r.get("kind") == "instructions" and r.get("set") == name and (not answered or "answered" in r)
    }
