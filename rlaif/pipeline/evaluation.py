"""Per-round evaluation of the current policy.

What is measured (each only where the config asks for it):
- ``pass@1`` (and ``pass@<code_samples>``) on held-out code problems: ``code_samples`` samples per
  problem at ``code_temperature``, each executed in the sandbox; both are the unbiased estimator of
  the one verified metric (:mod:`rlaif.tasks.metric`); after training, each sample is paired with
  the same sample of the starting policy's (and the previous round's) evaluation: newly passing,
  newly failing, and an exact sign test (``code_change_vs_start`` / ``code_change_vs_previous``); the
  samples of a broken problem (status ``bad_problem``, in either evaluation) are not paired but counted
  (``bad_problem_samples``), as pass@k leaves them out;
- ``sampled_pass@k`` for each of ``code_sampled.ks``: a second, sampled evaluation of the same code
  problems (``code_sampled.samples`` per problem at its temperature and top_p, own per-record seeds),
  beside the greedy one; its rows are ``kind: code_sampled``. Its change (``code_sampled_change_vs_start``
  / ``..._vs_previous``) is paired per PROBLEM: the number of passing samples before vs after, with a
  sign test on the problems that rose vs fell (the samples of one problem are not independent);
- ``win_rate_vs_previous``: the judge compares this round's answer with the previous round's on the
  same prompts, in both orders; the soft label P(this round better) is averaged over valid judgments;
- judge health for that comparison: invalid rate and position consistency;
- ``instruction_pass_rate``: held-out verifiable instructions checked by code (instruction_eval);
- ``mean_response_tokens``: reward hacking by length must be visible round over round (over every row
  but the sampled code rows, so the figure does not change meaning when ``code_sampled`` is set).

An eval block that names no set measures nothing: the stage still runs (an empty samples.jsonl,
metrics with the round and label only, so the report, warnings and resume read it as before) but it
starts no policy engine.

Sampling seeds derive from the run seed and the record id only, so a re-run gives the same samples.
Each generation shows its progress on stderr (requests done, ETA, output tok/s) where the engine can.
"""

from __future__ import annotations

from pathlib import Path

from rlaif.code.jobs import CODE_STOP
from rlaif.judges import load_judge
from rlaif.pipeline.context import RunContext
from rlaif.pipeline.health import invalid_reasons
from rlaif.pipeline.inputs import load_prompt_source, read_prompt_source
from rlaif.pipeline.instruction_eval import instruction_eval
from rlaif.pipeline.judging import judge_label, win_rate_judge
from rlaif.pipeline.progress import engine_progress
from rlaif.pipeline.sampling import per_record_sampling
from rlaif.pipeline.summary import EvalOutputs, EvalSummary
from rlaif.records import iter_json_lines, write_jsonl
from rlaif.tasks.code import CodeTask
from rlaif.tasks.metric import paired_change, paired_problem_change, pass_at_k_metric, passing_counts


def _code_outcomes(rows) -> tuple[dict[str, bool], set[str]]:
    """``{"<task id>#<sample>": passed}`` for the code rows of an evaluation, and the keys of the
    samples of bad problems, left out of it: a broken problem's samples carry ``passed: false`` but say
    nothing about the policy (pass@k leaves them out by status too)."""
    outcomes: dict[str, bool] = {}
    bad: set[str] = set()
    for r in rows:
        if r.get("kind") != "code":
            continue
        key = f"{r['id']}#{r['sample']}"
        if r.get("status") == "bad_problem":
            bad.add(key)
        elif r.get("passed") is not None:
            outcomes[key] = bool(r["passed"])
    return outcomes, bad


def _code_change(before_rows, after_rows) -> dict:
    """The paired per-sample change (:func:`paired_change`) over the samples whose problem is sound in
    both evaluations; ``bad_problem_samples`` counts the samples left out because their problem is
    broken in either one (neither paired nor unmatched)."""
    before, bad_before = _code_outcomes(before_rows)
    after, bad_after = _code_outcomes(after_rows)
    bad = bad_before | bad_after
    change = paired_change(
        {k: v for k, v in before.items() if k not in bad}, {k: v for k, v in after.items() if k not in bad}
    )
    return change | {"bad_problem_samples": len(bad)}


def _code_eval(ctx: RunContext, engine, rows: list[dict], compare: dict[str, Path] | None = None) -> dict:
    """pass@1 and pass@n through the one verified metric (unbiased estimator, bad problems left out);
    ``compare`` (label -> an earlier evaluation's samples.jsonl) adds the paired per-sample change and
    its sign test, because a per-round pass@1 alone cannot tell a consistent gain from noise."""
    ev = ctx.cfg.eval
    problems = load_prompt_source(ev.code_problems, "eval.code_problems")
    sampling = per_record_sampling(
        ctx.cfg.seed, "eval_code", [p.task_id for p in problems],
        n=ev.code_samples, temperature=ev.code_temperature, max_tokens=ev.max_tokens, stop=list(CODE_STOP),
    )  # fmt: skip
    metric = pass_at_k_metric(CodeTask(problems, pool=ctx.sandbox()), sorted({1, ev.code_samples}))
    checked, summary = metric.measure(engine, problems, sampling)
    rows += [_code_row("code", c) for c in checked]
    out: dict = {f"pass@{k}": _rounded(summary.get(f"pass@{k}")) for k in sorted({1, ev.code_samples})}
    out.update(code_problems=summary["problems"], code_status=summary["status_counts"])
    for label, path in (compare or {}).items():
        if path.is_file():
            change = _code_change([r for _, r in iter_json_lines(path)], rows)
            out[f"code_change_vs_{label}"] = change
            odd = "".join(
                f", {change[k]} {k.replace('_', ' ')}"
                for k in ("unmatched", "bad_problem_samples")
                if change[k]
            )
            ctx.say(
                f"  held-out code vs {label}: {change['gained']} newly pass, {change['lost']} newly fail "
                f"of {change['paired']} paired samples{odd} (sign test p={change['sign_test_p']})"
            )
    return out


def _sampled_counts(rows) -> dict[str, tuple[int, int]]:
    """``{task id: (samples, passing)}`` for the sampled code rows of an evaluation (bad problems left out)."""
    out: dict[str, tuple[int, int]] = {}
    for r in rows:
        if r.get("kind") == "code_sampled" and r.get("status") != "bad_problem":
            n, c = out.get(r["id"], (0, 0))
            out[r["id"]] = (n + 1, c + int(bool(r.get("passed"))))
    return out


def _code_sampled_eval(
    ctx: RunContext, engine, rows: list[dict], compare: dict[str, Path] | None = None
) -> dict:
    """sampled_pass@k on the greedy evaluation's problems; ``compare`` adds the per-problem paired change
    (:func:`paired_problem_change`), since k samples of one problem are one observation, not k."""
    ev, sc = ctx.cfg.eval, ctx.cfg.eval.code_sampled
    problems = load_prompt_source(ev.code_problems, "eval.code_problems")
    sampling = per_record_sampling(
        ctx.cfg.seed, "eval_code_sampled", [p.task_id for p in problems], n=sc.samples,
        temperature=sc.temperature, top_p=sc.top_p, max_tokens=ev.max_tokens, stop=list(CODE_STOP),
    )  # fmt: skip
    metric = pass_at_k_metric(CodeTask(problems, pool=ctx.sandbox()), sc.ks)
    checked, summary = metric.measure(engine, problems, sampling)
    rows += [_code_row("code_sampled", c) for c in checked]
    out: dict = {f"sampled_pass@{k}": _rounded(summary.get(f"pass@{k}")) for k in sc.ks}
    out.update(code_sampled_problems=summary["problems"], code_sampled_status=summary["status_counts"])
    if summary.get("skipped_k"):
        out["code_sampled_skipped_k"] = summary["skipped_k"]
    mine = passing_counts(checked)
    for label, path in (compare or {}).items():
        if path.is_file():
            change = paired_problem_change(_sampled_counts(r for _, r in iter_json_lines(path)), mine)
            out[f"code_sampled_change_vs_{label}"] = change
            odd = "".join(
                f", {change[k]} {k.replace('_', ' ')}" for k in ("unequal_samples", "unmatched") if change[k]
            )
            ctx.say(
                f"  held-out code, sampled (n={sc.samples}) vs {label}: {change['gained']} problems pass more "
                f"samples, {change['lost']} fewer, {change['ties']} as many, of {change['paired']} paired "
                f"problems{odd} (sign test p={change['sign_test_p']})"
            )
    return out


def _code_row(kind: str, c) -> dict:
    return {
        "kind": kind,
        "id": c.key,
        "sample": c.completion.index,
        "text": c.completion.text,
        "tokens": len(c.completion.token_ids or []),
        "status": c.verdict.status,
        "passed": c.verdict.passed,
    }


def _rounded(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


def _win_rate(ctx: RunContext, engine, rows: list[dict], previous: Path | None) -> dict:

    ev = ctx.cfg.eval
    data = read_prompt_source(ev.win_rate_prompts, "eval.win_rate_prompts")
    prompts = data.items[: ev.win_rate_limit]
    sampling = per_record_sampling(
        ctx.cfg.seed,
        "eval_answer",
        [p.id for p in prompts],
        max_tokens=ev.max_tokens,
        temperature=0.7,
        top_p=0.9,
    )
    answers = engine.generate([p.messages for p in prompts], sampling)
    mine = {}
    for p, comps in zip(prompts, answers, strict=True):
        c = comps[0]
        mine[p.id] = (p, c.text)
        rows.append(
            {"kind": "answer", "id": p.id, "sample": 0, "text": c.text, "tokens": len(c.token_ids or [])}
        )
    out: dict = {"win_rate_prompts_skipped_malformed": len(data.skipped)}
    if previous is None or not previous.is_file():
        return out
    before = {r["id"]: r["text"] for _, r in iter_json_lines(previous) if r.get("kind") == "answer"}
    items = [(p.messages, text, before[pid]) for pid, (p, text) in mine.items() if pid in before]
    if not items:
        return out
    spec = win_rate_judge(ctx.cfg)
    judge_engine = ctx.judge_engine()
    judge = load_judge(spec, judge_engine)
    results = judge.compare(items)
    valid = [r for r in results if r.valid and r.prob_a is not None]
    consistent = [r.consistent for r in results if r.consistent is not None]
    n_judgments = sum(len(r.judgments) for r in results)
    invalid = sum(1 for r in results for j in r.judgments if j.status == "invalid")
    out["win_rate_vs_previous"] = round(sum(r.prob_a for r in valid) / len(valid), 4) if valid else None
    out["win_rate_n"] = len(items)
    out["win_rate_valid"] = len(valid)
    out["win_rate_judge"] = judge_label(judge, spec)
    out["win_rate_judge_model"] = getattr(judge_engine, "model_name", None)
    out["judge_invalid_reasons"] = invalid_reasons(
        [j.model_dump(mode="json") for r in results for j in r.judgments]
    )
    out["judge_invalid_rate"] = round(invalid / n_judgments, 4) if n_judgments else None
    out["judge_position_consistency"] = round(sum(consistent) / len(consistent), 4) if consistent else None
    return out


def measures_something(ev) -> bool:
    """Whether the eval block names any held-out set; only then is the policy engine needed."""
    return any(s is not None for s in (ev.code_problems, ev.win_rate_prompts, ev.instructions))


def evaluate_policy(
    ctx: RunContext, stage_dir: Path, round_index: int, previous: Path | None, label: str,
    start: Path | None = None,
) -> EvalSummary:  # fmt: skip
    """The round's metrics; ``previous`` is the previous evaluation's stage directory (win rate, paired
    instruction change), ``start`` the starting policy's when that is not ``previous``."""
    ev = ctx.cfg.eval
    rows: list[dict] = []
    metrics: dict = {"round": round_index, "label": label}
    where = f"  {stage_dir.parent.name}/{stage_dir.name}"
    # an engine start costs tens of seconds (minutes on a big model) per round: none for nothing
    engine = ctx.policy_engine() if measures_something(ev) else None
    if engine is None:
        ctx.say(f"{where}: eval measures nothing (no code_problems, win_rate_prompts or instructions)")
    compare = {"start": start or previous} | ({"previous": previous} if start is not None else {})
    compare = {k: v / "samples.jsonl" for k, v in compare.items() if v is not None}
    if ev.code_problems is not None:
        with engine_progress(engine, f"{where} code"):
            metrics.update(_code_eval(ctx, engine, rows, compare))
        if ev.code_sampled is not None:
            with engine_progress(engine, f"{where} code sampled"):
                metrics.update(_code_sampled_eval(ctx, engine, rows, compare))
    if ev.win_rate_prompts is not None:
        prev_samples = previous / "samples.jsonl" if previous is not None else None
        with engine_progress(engine, f"{where} answers"):
            metrics.update(_win_rate(ctx, engine, rows, prev_samples))
    if ev.instructions is not None:
        with engine_progress(engine, f"{where} instructions"):
            metrics.update(instruction_eval(ctx, engine, rows, compare))
    tokens = [r["tokens"] for r in rows if r["kind"] != "code_sampled"]
    metrics["mean_response_tokens"] = round(sum(tokens) / len(tokens), 2) if tokens else None
    write_jsonl(stage_dir / "samples.jsonl", rows)
    ctx.say("  " + ", ".join(f"{k}={v}" for k, v in metrics.items() if not isinstance(v, dict)))
    return EvalSummary(
        outputs=EvalOutputs(samples=str(stage_dir / "samples.jsonl")),
        counts={"samples": len(rows)},
        metrics=metrics,
    )
