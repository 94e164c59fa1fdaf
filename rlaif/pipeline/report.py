"""Run report: ``metrics.json`` for machines, PNG plots and ``report.html`` for people.

The plots are drawn from ``metrics.json`` alone (never from in-memory state), so the report can be
re-rendered for any finished or partial run with ``rlaif report RUN_DIR``.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from rlaif.pipeline.manifest import atomic_write_text, read_manifest


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def collect_metrics(run_dir: Path, plan: list[str]) -> dict:
    """Gather every stage's summary into one JSON document."""
    run_dir = Path(run_dir)
    rounds, feedback, pairs, training, timings = [], {}, {}, {}, {}
    examples: list[dict] = []
    for step in plan:
        stage_dir = run_dir / step
        m = read_manifest(stage_dir)
        if not m:
            continue
        timings[step] = m.get("wall_s")
        summary = m.get("summary", {})
        group, _, stage = step.partition("/")
        if stage == "eval":
            rounds.append(summary.get("metrics", {}))
        elif stage == "feedback":
            feedback[group] = {
                "counts": summary.get("counts", {}),
                "drops": summary.get("drops", {}),
                "length": summary.get("length", {}),
                "stats": summary.get("stats", {}),
            }
        elif stage == "pairs":
            pairs[group] = {
                "counts": summary.get("counts", {}),
                "drops": summary.get("drops", {}),
                "length": summary.get("length", {}),
            }
            examples += [dict(e, round=group) for e in summary.get("examples", [])[:2]]
        elif stage == "train":
            curve = [
                {k: v for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
                for r in _read_jsonl(stage_dir / "metrics.jsonl")
            ]
            training[group] = {
                "summary": summary.get("metrics", {}),
                "counts": summary.get("counts", {}),
                "curve": curve,
                "skipped": summary.get("skipped"),
            }
    metrics = {
        "run": run_dir.name,
        "rounds": rounds,
        "feedback": feedback,
        "pairs": pairs,
        "training": training,
        "timings_s": timings,
        "examples": examples,
    }
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2, default=str) + "\n")
    return metrics


def _plots(run_dir: Path, metrics: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    rounds = metrics["rounds"]
    if rounds:
        keys = [
            k
            for k in ("pass@1", "win_rate_vs_previous", "mean_response_tokens", "judge_invalid_rate")
            if any(isinstance(r.get(k), (int, float)) for r in rounds)
        ]
        if keys:
            fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4), squeeze=False)
            labels = [r.get("label", str(r.get("round"))) for r in rounds]
            for ax, key in zip(axes[0], keys, strict=True):
                ys = [r.get(key) if isinstance(r.get(key), (int, float)) else float("nan") for r in rounds]
                ax.plot(range(len(ys)), ys, marker="o")
                ax.set_xticks(range(len(ys)), labels, rotation=30, fontsize=8)
                ax.set_title(key)
                ax.grid(alpha=0.3)
                for x, y in enumerate(ys):
                    if y == y:
                        ax.annotate(
                            f"{y:.3g}",
                            (x, y),
                            textcoords="offset points",
                            xytext=(0, 5),
                            ha="center",
                            fontsize=8,
                        )
            fig.tight_layout()
            fig.savefig(run_dir / "per_round.png", dpi=110)
            plt.close(fig)
            made.append("per_round.png")
    fb = metrics["feedback"]
    if fb:
        groups = list(fb)
        reasons = sorted({r for g in groups for r in fb[g]["drops"]})
        fig, ax = plt.subplots(figsize=(max(4, 1.6 * len(groups) + 2), 3.4))
        bottom = [0.0] * len(groups)
        series = [("pairs", [fb[g]["counts"].get("pairs_out", 0) for g in groups])]
        series += [(f"drop: {r}", [fb[g]["drops"].get(r, 0) for g in groups]) for r in reasons]
        for name, values in series:
            ax.bar(groups, values, bottom=bottom, label=name)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.set_title("feedback: pairs made and drops by reason")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(run_dir / "pairs.png", dpi=110)
        plt.close(fig)
        made.append("pairs.png")
    tr = metrics["training"]
    curves = {g: t["curve"] for g, t in tr.items() if t["curve"]}
    if curves:
        wanted = ["loss", "rewards/margins", "reward", "kl"]
        keys = [k for k in wanted if any(k in row for c in curves.values() for row in c)]
        fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(4.2 * max(1, len(keys)), 3.4), squeeze=False)
        for ax, key in zip(axes[0], keys, strict=False):
            for group, curve in curves.items():
                ys = [row[key] for row in curve if key in row]
                if ys:
                    ax.plot(range(1, len(ys) + 1), ys, label=group)
            ax.set_title(key)
            ax.set_xlabel("logged step")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(run_dir / "training.png", dpi=110)
        plt.close(fig)
        made.append("training.png")
    return made


def _table(rows: list[dict], keys: list[str]) -> str:
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r.get(k, '')))}</td>" for k in keys) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def write_report(run_dir: Path, metrics: dict) -> Path:
    run_dir = Path(run_dir)
    images = _plots(run_dir, metrics)
    round_keys = sorted(
        {k for r in metrics["rounds"] for k, v in r.items() if not isinstance(v, dict)},
        key=lambda k: (k not in ("label", "round"), k),
    )
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>rlaif run {html.escape(metrics['run'])}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;"
        "margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px;vertical-align:top}"
        "pre{white-space:pre-wrap;margin:0;font-size:12px}</style></head><body>",
        f"<h1>rlaif run: {html.escape(metrics['run'])}</h1>",
        "<h2>Per-round evaluation</h2>",
        _table(metrics["rounds"], round_keys),
    ]
    parts += [f"<img src='{name}' alt='{name}' style='max-width:100%'>" for name in images]
    fb_rows = [{"round": g, **v["counts"], "drops": v["drops"]} for g, v in metrics["feedback"].items()]
    if fb_rows:
        keys = sorted({k for r in fb_rows for k in r}, key=lambda k: (k != "round", k))
        parts += ["<h2>Feedback</h2>", _table(fb_rows, keys)]
    pr_rows = [
        {
            "round": g,
            **v["counts"],
            "drops": v["drops"],
            "chosen/rejected length": v["length"].get("mean_ratio") if v.get("length") else None,
        }
        for g, v in metrics["pairs"].items()
    ]
    if pr_rows:
        keys = sorted({k for r in pr_rows for k in r}, key=lambda k: (k != "round", k))
        parts += ["<h2>Pairs after filtering</h2>", _table(pr_rows, keys)]
    tr_rows = [
        {
            "stage": g,
            **t["counts"],
            **{
                k: round(v, 4)
                for k, v in t["summary"].items()
                if k in ("train_loss", "rewards/margins", "rewards/accuracies", "reward", "kl")
            },
            "skipped": t.get("skipped") or "",
        }
        for g, t in metrics["training"].items()
    ]
    if tr_rows:
        keys = sorted({k for r in tr_rows for k in r}, key=lambda k: (k != "stage", k))
        parts += ["<h2>Training</h2>", _table(tr_rows, keys)]
    if metrics["examples"]:
        parts.append(
            "<h2>Example pairs</h2><table><tr><th>round</th><th>prompt</th><th>chosen</th><th>rejected</th></tr>"
        )
        for e in metrics["examples"]:
            prompt = e["prompt"][-1]["content"] if e.get("prompt") else ""
            parts.append(
                "<tr>"
                + "".join(
                    f"<td><pre>{html.escape(str(x))}</pre></td>"
                    for x in (e["round"], prompt, e["chosen"], e["rejected"])
                )
                + "</tr>"
            )
        parts.append("</table>")
    parts += [
        "<h2>Stage wall time (s)</h2>",
        _table([metrics["timings_s"]], list(metrics["timings_s"])),
        "</body></html>",
    ]
    out = run_dir / "report.html"
    atomic_write_text(out, "\n".join(parts))
    return out
