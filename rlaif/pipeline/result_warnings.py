"""Warnings about results that mean nothing, drawn from the finished stages' summaries and samples.

Why: the health checks (:mod:`rlaif.pipeline.health`) see counts, so a run whose judge always answers
"A" (a 50% win rate at 0% position consistency) or whose pass rate falls between rounds used to end
"ok". Three checks, each with a ``health`` threshold (null turns it off):

- ``judge_consistency``: the position consistency (the share of comparisons whose verdict survives
  swapping the answers) of the win-rate judge, or of a DPO round's feedback judge (pairwise labellers
  such as rl_cai's), is below ``health.min_judge_consistency``; a judge that ignores the answers sits
  at 0.5 or below, so its win rate or its labels say nothing;
- ``drop``: a round's held-out outcomes fall vs the previous evaluation, paired sample by sample, with
  an exact sign test p below ``health.drop_p_value`` (code: each problem's sample k against the
  previous round's sample k, whose seed is the same, the samples of broken problems, status
  ``bad_problem``, left out as pass@k leaves them out; pass@k: each problem solved or not; sampled
  pass@k: the evaluation's own per-problem change, fewer vs more passing samples; instructions: the
  evaluation's own paired change);
- ``invalid_rise``: a stage's judge invalid rate (the DPO rounds' feedback, and the win-rate judge
  separately) exceeds the lowest rate of the earlier rounds by more than ``health.max_invalid_rate_rise``.

Guarantees: each warning names its check, round, stage and figure in one line; the same inputs give
the same warnings, so ``rlaif report`` re-derives them. ``health.warnings_as_errors`` (true, or a list
of checks) turns them into a failed health check. Non-guarantees: a consistent judge can still be wrong;
a drop below significance is not warned about; a win rate below 0.5 is not tested (the per-prompt soft
labels are not kept).
"""

from __future__ import annotations

import sys
from pathlib import Path

from rlaif.config.health import HealthConfig
from rlaif.pipeline.health import HealthCheckFailed
from rlaif.pipeline.manifest import read_manifest
from rlaif.records import iter_json_lines
from rlaif.tasks.metric import paired_change

CHECKS = ("judge_consistency", "drop", "invalid_rise")


def _warning(check: str, stage: str, message: str) -> dict:
    return {
        "check": check,
        "stage": stage,
        "round": stage.partition("/")[0],
        "message": f"{stage}: {message}",
    }


def _code_outcomes(stage_dir: Path) -> tuple[dict[str, bool], dict[str, bool]]:
    """Per sample (``problem#k``) and per problem (solved by any sample) outcomes of an evaluation."""
    path = stage_dir / "samples.jsonl"
    samples: dict[str, bool] = {}
    if path.is_file():
        for _, row in iter_json_lines(path):
            # a broken problem's samples (status bad_problem, passed false) say nothing of the policy
            if (
                row.get("kind") == "code"
                and row.get("status") != "bad_problem"
                and row.get("passed") is not None
            ):
                samples[f"{row['id']}#{row['sample']}"] = bool(row.get("passed"))
    solved: dict[str, bool] = {}
    for key, ok in samples.items():
        problem = key.rpartition("#")[0]
        solved[problem] = solved.get(problem, False) or ok
    return samples, solved


def _drop(
    stage: str, what: str, change: dict, p_max: float, words: tuple[str, str] = ("newly fail", "newly pass")
) -> dict | None:
    lost, gained, p = change.get("lost", 0), change.get("gained", 0), change.get("sign_test_p", 1.0)
    if lost <= gained or not isinstance(p, (int, float)) or p >= p_max:
        return None
    return _warning(
        "drop",
        stage,
        f"{what} fell vs the previous round: {lost} {words[0]}, {gained} {words[1]} of "
        f"{change.get('paired')} paired (sign test p={p:.3g} < health.drop_p_value {p_max:g})",
    )


def _below_floor(rate: object, floor: float | None) -> bool:
    """A measured position consistency under ``health.min_judge_consistency`` (null: never)."""
    return floor is not None and isinstance(rate, (int, float)) and rate < floor


def _eval_warnings(stage: str, metrics: dict, health: HealthConfig) -> list[dict]:
    out = []
    floor, rate = health.min_judge_consistency, metrics.get("judge_position_consistency")
    if _below_floor(rate, floor):
        win = metrics.get("win_rate_vs_previous")
        win_text = f"{100 * win:.1f}%" if isinstance(win, (int, float)) else "n/a"
        out.append(
            _warning(
                "judge_consistency",
                stage,
                f"win-rate judge position consistency {100 * rate:.1f}% (n={metrics.get('win_rate_n')}) "
                f"< health.min_judge_consistency {floor:g}; chance is 50%, so the win rate {win_text} "
                "means nothing",
            )
        )
    change = metrics.get("instruction_change_vs_previous") or metrics.get("instruction_change_vs_start")
    if health.drop_p_value is not None and isinstance(change, dict):
        out += filter(None, [_drop(stage, "held-out instruction pass rate", change, health.drop_p_value)])
    sampled = metrics.get("code_sampled_change_vs_previous") or metrics.get("code_sampled_change_vs_start")
    if health.drop_p_value is not None and isinstance(sampled, dict):
        what, words = "held-out code sampled pass@k (per problem)", ("pass fewer samples", "more")
        out += filter(None, [_drop(stage, what, sampled, health.drop_p_value, words)])
    return out


def _labeller_consistency(stage: str, counts: dict, health: HealthConfig) -> dict | None:
    floor, rate = health.min_judge_consistency, counts.get("position_consistency")
    if not _below_floor(rate, floor):
        return None
    return _warning(
        "judge_consistency",
        stage,
        f"feedback judge position consistency {100 * rate:.1f}% (n={counts.get('judgments')} judgments) "
        f"< health.min_judge_consistency {floor:g}; chance is 50%, so its labels follow the answers' "
        "order, not their content",
    )


def _rise(check_stage: str, what: str, rate: float, earlier: list[float], limit: float) -> dict | None:
    if not earlier or rate - min(earlier) <= limit:
        return None
    return _warning(
        "invalid_rise",
        check_stage,
        f"{what} invalid rate {100 * rate:.1f}% rose from {100 * min(earlier):.1f}% in an earlier round "
        f"(> health.max_invalid_rate_rise {limit:g})",
    )


def find_warnings(run_dir: Path, plan: list, health: HealthConfig) -> list[dict]:
    """The warnings of the finished stages among ``plan`` (in run order)."""
    run_dir, out = Path(run_dir), []
    previous_code: tuple[dict, dict] | None = None
    rates: dict[str, list[float]] = {"feedback": [], "win-rate judge": []}
    for step in plan:
        summary = (read_manifest(run_dir / step.name) or {}).get("summary")
        if summary is None:
            continue
        if step.kind == "eval":
            metrics = summary.get("metrics") or {}
            out += _eval_warnings(step.name, metrics, health)
            code = _code_outcomes(run_dir / step.name)
            if code[0] and previous_code is not None and health.drop_p_value is not None:
                for what, before, after in (
                    ("held-out code pass@1 (per sample)", previous_code[0], code[0]),
                    ("held-out code pass@k (problems solved)", previous_code[1], code[1]),
                ):
                    found = _drop(step.name, what, paired_change(before, after), health.drop_p_value)
                    out += [found] if found else []
            previous_code = code if code[0] else previous_code
            rate, series = metrics.get("judge_invalid_rate"), "win-rate judge"
        elif step.kind == "feedback":  # the DPO rounds only: SFT feedback is judged for another purpose
            counts = summary.get("counts") or {}
            n = counts.get("judgments") or 0
            out += filter(None, [_labeller_consistency(step.name, counts, health)])
            rate, series = (counts.get("judgments_invalid", 0) / n if n else None), "feedback"
        else:
            continue
        if isinstance(rate, (int, float)):
            if health.max_invalid_rate_rise is not None:
                found = _rise(step.name, series, rate, rates[series], health.max_invalid_rate_rise)
                out += [found] if found else []
            rates[series].append(rate)
    return out


def as_errors(health: HealthConfig) -> set[str]:
    """The checks whose warnings stop the run."""
    wanted = health.warnings_as_errors
    return set(CHECKS) if wanted is True else set(wanted or [])


def raise_on_warnings(warnings: list[dict], health: HealthConfig) -> None:
    """Fail the first warning whose check ``health.warnings_as_errors`` makes an error."""
    errors = as_errors(health)
    for w in warnings:
        if w["check"] in errors:
            reason = w["message"].partition(": ")[2]
            raise HealthCheckFailed(w["stage"], f"{reason} (health.warnings_as_errors)")


def print_warnings(warnings: list[dict]) -> None:
    """The warnings as the run's (or ``rlaif report``'s) last lines on stderr, one per line."""
    for w in warnings:
        print(f"warning: {w['message']} [{w['check']}]", file=sys.stderr, flush=True)
