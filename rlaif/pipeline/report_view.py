"""What the report page shows, built from ``metrics.json``: the header, the status banner, the warnings
(results that mean nothing; an ok banner says how many) and tables of formatted numbers (rates as percentages, counts with thousands separators, missing values as a dash).

Pure data in, plain dicts out; the HTML itself is the template ``rlaif/assets/report.html.j2``.
"""

from __future__ import annotations

import datetime as _dt
import itertools
from typing import Any

from rlaif.pipeline.code_version import SHOWN_FILES, record_label

DASH = "\u2013"
PERCENT_KEYS = (
    "pass@",
    "win_rate_vs_previous",
    "invalid_rate",
    "consistency",
    "accuracy",
    "accuracies",
    "instruction_pass_rate",
    "answered_rate",
)
ROUND_COLUMNS = {
    "pass@1": "pass@1",
    "win_rate_vs_previous": "win rate vs previous",
    "win_rate_n": "win-rate prompts (n)",
    "win_rate_valid": "valid comparisons",
    "judge_invalid_rate": "judge invalid rate",
    "judge_position_consistency": "judge position consistency",
    "mean_response_tokens": "mean response tokens",
    "code_problems": "code problems",
    "win_rate_prompts_skipped_malformed": "malformed prompts skipped",
}
ROUND_HIDDEN = {"round", "label", "win_rate_judge", "win_rate_judge_model"}
TRAIN_METRICS = {
    "train_loss": "loss",
    "rewards/margins": "reward margin",
    "rewards/accuracies": "reward accuracy",
    "reward": "reward",
    "kl": "KL",
}


def fmt(key: str, value: Any) -> str:
    """One value as a person reads it."""
    if value is None or value == "":
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)) and any(k in key for k in PERCENT_KEYS) and 0 <= value <= 1:
        return f"{100 * value:.1f}%"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:
            return DASH
        return f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:.4g}"
    return str(value)


def cell(key: str, value: Any) -> dict:
    """A table cell: text, a CSS class (numbers right-aligned, empty cells dimmed), or a list of items."""
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: -kv[1] if isinstance(kv[1], (int, float)) else 0)
        return {"text": "", "css": "", "entries": [(k, fmt(k, v)) for k, v in items]}
    css = "num" if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
    text = fmt(key, value)
    return {"text": text, "css": "empty" if text == DASH else css, "entries": None}


def _status(status: dict) -> dict:
    state = status.get("status", "unknown")
    if state == "ok":
        return {"state": "ok", "css": "ok", "failed": False,
                "title": "Status: ok \u2013 every stage finished and passed the health checks", "why": ""}  # fmt: skip
    if state == "failed":
        where = status.get("stage") or "setup"
        return {"state": "failed", "css": "failed", "failed": True,
                "title": f"Status: FAILED at {where}", "why": status.get("reason") or ""}  # fmt: skip
    if state == "interrupted":
        where = status.get("stage") or "an unknown stage"
        return {"state": "interrupted", "css": "running", "failed": False,
                "title": f"Status: INTERRUPTED during {where} \u2013 the figures below are partial",
                "why": "rlaif run resumes it from the last finished chunk or training checkpoint"}  # fmt: skip
    if state == "running":
        return {"state": "running", "css": "running", "failed": False,
                "title": "Status: incomplete \u2013 the run is still going, or stopped before it finished",
                "why": "rlaif run resumes it from the last finished chunk"}  # fmt: skip
    return {"state": "unknown", "css": "unknown", "failed": False,
            "title": "Status: unknown (no status.json in the run directory)", "why": ""}  # fmt: skip


def _header(metrics: dict) -> dict:
    cfg = metrics.get("config") or {}
    policy, judge = cfg.get("policy") or {}, cfg.get("judge") or {}
    prompts, final = cfg.get("prompts") or {}, cfg.get("final") or {}
    final_text = final.get("kind", "none")
    if final_text != "none":
        final_text += f" (reward: {final.get('reward')})"
    who = "the policy" if judge.get("model", "policy") == "policy" else judge.get("model")
    uses = metrics.get("judge_uses")  # None: not known (older metrics.json), shown as before
    judge_text = f"{judge.get('template') or 'built-in defaults'} on {who}"
    if uses is not None:
        judge_text = f"{judge_text} (for {', '.join(uses)})" if uses else None
    return {
        "model": policy.get("path", DASH),
        "adapter": policy.get("adapter"),
        "config_file": (metrics.get("status") or {}).get("config_file") or DASH,
        "feedback": f"{(cfg.get('feedback') or {}).get('source', DASH)} on {prompts.get('kind', '?')} "
        f"prompts{' from ' + str(prompts['path']) if prompts.get('path') else ''}",
        "judge": judge_text,  # None: the run uses no judge, no line
        "rounds": cfg.get("rounds", DASH),
        "final": final_text,
        **_code_lines(metrics.get("code") or {}),
        "code_changed": _code_changed((metrics.get("code") or {}).get("run") or {}),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _code_lines(code: dict) -> dict:
    """The header's code line and, when stages were made by other code, the line naming them."""
    run, stages = code.get("run") or {}, code.get("stages") or {}
    label = f"rlaif {run.get('version')} (code {run['digest']})" if run.get("digest") else None
    others = [f"{name} ({record_label(stages[name])})" for name in code.get("other") or []]
    return {"code": label, "other_code": "; ".join(others) or None}


def _code_changed(run: dict) -> str | None:
    """The changes of rlaif's files the last run went on through (``--allow-code-change``), one per
    stage it came before, with a few of the files; None when there were none."""
    parts = []
    for change in run.get("changes") or []:
        files = change.get("files") or []
        shown = ", ".join(files[:SHOWN_FILES]) + (
            f" and {len(files) - SHOWN_FILES} more" if len(files) > SHOWN_FILES else ""
        )
        parts.append(
            f"before {change.get('before_stage')}: {shown or 'the version'} (now code {change.get('digest')})"
        )
    return "; ".join(parts) + " (went on: --allow-code-change)" if parts else None


def _rounds(rounds: list[dict]) -> dict:
    present = {k for r in rounds for k, v in r.items() if not isinstance(v, dict) and k not in ROUND_HIDDEN}
    keys = [k for k in ROUND_COLUMNS if k in present]
    passk = sorted(k for k in present if k.startswith("pass@") and k != "pass@1")
    passk += sorted(
        (k for k in present if k.startswith("sampled_pass@")), key=lambda k: int(k.rpartition("@")[2])
    )
    keys = keys[:1] + passk + keys[1:] if "pass@1" in keys else passk + keys
    keys += sorted(present - set(keys))
    rows = [
        [cell("label", r.get("label", r.get("round")))] + [cell(k, r.get(k)) for k in keys] for r in rounds
    ]
    notes, seen = [], {}
    for r in rounds:
        if r.get("win_rate_judge"):
            line = (
                f"judged by {r['win_rate_judge']} on {r.get('win_rate_judge_model') or 'the judge engine'}, "
                "both orders averaged"
            )
            seen.setdefault(line, []).append(
                f"{r.get('label')}: n={r.get('win_rate_n')} ({r.get('win_rate_valid')} valid)"
            )
    for line, which in seen.items():
        notes.append(
            f"Win rate = P(this round's answer beats the previous round's), {line}; {', '.join(which)}."
        )
    for r in rounds:
        sets = [""] + sorted(
            k[: -len("instruction_change_vs_start")] for k in r if k.endswith("_instruction_change_vs_start")
        )
        for prefix, against in itertools.product(sets, ("start", "previous")):
            named = f" ({prefix[:-1]})" if prefix else ""
            for key, outcome, gained, lost in (
                ("instruction_change_vs_", "", "samples newly pass", "newly fail"),
                ("instruction_answered_change_vs_", ", passed AND answered the request", "samples newly", "no longer"),
            ):  # fmt: skip
                change = r.get(f"{prefix}{key}{against}")
                if isinstance(change, dict):
                    notes.append(
                        f"{r.get('label')}, held-out instructions{named} vs the {against} policy{outcome}: "
                        f"{change.get('gained')} {gained}, {change.get('lost')} {lost} of "
                        f"{change.get('paired')} (exact sign test p={change.get('sign_test_p')})."
                    )
        for against in ("start", "previous"):
            change = r.get(f"code_sampled_change_vs_{against}")
            if isinstance(change, dict):
                notes.append(
                    f"{r.get('label')}, held-out code sampled vs the {against} policy, per problem: "
                    f"{change.get('gained')} pass more samples, {change.get('lost')} fewer, {change.get('ties')} "
                    f"as many of {change.get('paired')} (exact sign test p={change.get('sign_test_p')})."
                )
    return {"head": ["round"] + [ROUND_COLUMNS.get(k, k) for k in keys], "rows": rows, "notes": notes}


def _feedback(fb: dict) -> list[dict]:
    """Two tables: what the feedback made (pairs, judgments) and what it dropped (prompts or code
    problems that gave no pair, by reason) - a pair and a dropped prompt are different units."""
    if not fb:
        return []
    made = {"prompts_in": "prompts in", "pairs_out": "pairs made", "judgments": "judgments",
            "judgments_invalid": "invalid judgments",
            "prompts_skipped_malformed": "malformed prompts skipped"}  # fmt: skip
    rows, drop_rows, notes = [], [], []
    for group, v in fb.items():
        counts = v.get("counts", {})
        other = {k: n for k, n in counts.items() if k not in made and k != "dropped"}
        rows.append([cell("round", group)] + [cell(k, counts.get(k)) for k in made] + [cell("other", other)])
        drop_rows.append([cell("round", group), cell("n", counts.get("dropped")),
                          cell("drops", v.get("drops") or {}),
                          cell("reasons", v.get("invalid_reasons") or {})])  # fmt: skip
        notes += [f"{group}: skipped {line}" for line in (v.get("inputs") or {}).get("skipped_examples", [])]
    dropped = {"id": "feedback_dropped", "title": "Feedback: dropped prompts / problems", "rows": drop_rows,
               "head": ["round", "dropped", "drops by reason", "commonest invalid judgments"],
               "notes": ["A dropped prompt (or code problem) gave no pair; every drop is listed with its "
                         "reason in the round's feedback/dropped.jsonl."]}  # fmt: skip
    head = ["round", *made.values(), "other counts"]
    return [{"id": "feedback", "title": "Feedback: pairs made", "head": head, "rows": rows, "notes": notes},
            dropped]  # fmt: skip


def _pairs(pairs: dict) -> dict | None:
    if not pairs:
        return None
    rows = []
    for group, v in pairs.items():
        c = v.get("counts", {})
        ratio = (v.get("length") or {}).get("mean_ratio")
        rows.append([cell("round", group), cell("n", c.get("pairs_in")), cell("n", c.get("pairs_kept")),
                     cell("n", c.get("pairs_dropped")), cell("drops", v.get("drops") or {}),
                     cell("ratio", ratio)])  # fmt: skip
    head = ["round", "pairs in", "kept", "dropped", "drops by reason", "chosen/rejected length"]
    return {"id": "pairs", "title": "Pairs after filtering", "head": head, "rows": rows, "notes": []}


def _training(training: dict) -> list[dict]:
    if not training:
        return []
    rows, rm_rows = [], []
    for group, t in training.items():
        counts = dict(t.get("counts") or {})
        steps = counts.pop("steps", None)
        summary = t.get("summary") or {}
        rows.append(
            [cell("stage", f"{group}/train"), cell("steps", steps)]
            + [cell(k, summary.get(k)) for k in TRAIN_METRICS]
            + [cell("counts", counts), cell("note", t.get("skipped") or "")]
        )
        rm = t.get("reward_model")
        if rm:
            rm_rows.append([cell("stage", f"{group}/train"), cell("heldout_accuracy", rm.get("heldout_accuracy")),
                            cell("n", rm.get("heldout_pairs")), cell("n", rm.get("train_pairs"))])  # fmt: skip
    out = [{"id": "training", "title": "Training", "notes": [], "rows": rows,
            "head": ["stage", "steps", *TRAIN_METRICS.values(), "counts", "note"]}]  # fmt: skip
    if rm_rows:
        out.append({"id": "reward_model", "title": "Reward model", "rows": rm_rows,
                    "head": ["stage", "held-out accuracy", "held-out pairs", "training pairs"],
                    "notes": ["Accuracy = share of held-out pairs whose chosen answer the reward model scores "
                              "higher; the held-out pairs were never trained on."]})  # fmt: skip
    return out


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return DASH
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    return f"{minutes} min {sec:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def build_view(metrics: dict) -> dict:
    """Everything the template needs, already formatted."""
    sections = [*_feedback(metrics.get("feedback") or {}), _pairs(metrics.get("pairs") or {})]
    sections += _training(metrics.get("training") or {})
    examples = [
        {
            "round": e.get("round"),
            "prompt": e["prompt"][-1]["content"] if e.get("prompt") else "",
            "chosen": e.get("chosen", ""),
            "rejected": e.get("rejected", ""),
        }
        for e in metrics.get("examples") or []
    ]
    warnings = [w["message"] for w in metrics.get("warnings") or []]
    status = _status(metrics.get("status") or {})
    if warnings and status["state"] == "ok":
        status["title"] += f", but {len(warnings)} warning(s) below say some results mean nothing"
    return {
        "run": metrics.get("run", DASH),
        "header": _header(metrics),
        "status": status,
        "warnings": warnings,
        "rounds": _rounds(metrics.get("rounds") or []),
        "sections": [s for s in sections if s],
        "examples": examples,
        "timings": [(k, _duration(v)) for k, v in (metrics.get("timings_s") or {}).items()],
    }
