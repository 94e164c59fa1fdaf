"""Run report: ``metrics.json`` for machines, PNG plots and ``report.html`` for people.

The plots and the page are drawn from ``metrics.json`` alone (never from in-memory state), so the report
can be re-rendered for any finished, failed or partial run with ``rlaif report RUN_DIR``. The page is
self-contained: the plots are embedded in it as base64 PNG (``data:`` URIs), so ``report.html`` can be
mailed or attached alone; the PNG files are also written beside it for other uses. ``per_round.png``
has a panel per round figure (greedy pass@1, sampled pass@k with a line per k, the instruction pass
rate, the win rate, the response length, the judge invalid rate) that any round has, named in the
PNG's ``Description`` text. The page is the Jinja2 template ``rlaif/assets/report.html.j2``
(autoescaped: model output in example pairs cannot inject markup); :mod:`rlaif.pipeline.report_view`
turns the metrics into its header, status banner and formatted tables. ``metrics["warnings"]`` holds the results that mean nothing
(:mod:`rlaif.pipeline.result_warnings`), shown as a warning block under the status banner.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from rlaif.files import atomic_write_text
from rlaif.pipeline.health import read_status
from rlaif.pipeline.manifest import read_manifest
from rlaif.pipeline.report_view import build_view
from rlaif.pipeline.result_warnings import find_warnings

SHORT_CURVE = 25  # logged points up to which a training curve gets markers


def collect_metrics(run_dir: Path, plan: list) -> dict:
    """Gather every planned stage's summary into one JSON document; each stage kind fills its section
    (``plan``: :class:`rlaif.pipeline.stage_kinds.PlannedStage` items)."""
    from rlaif.pipeline.stage_kinds import KINDS  # the registry imports the stages, which import this

    run_dir = Path(run_dir)
    metrics: dict = {"run": run_dir.name, "status": read_status(run_dir), "config": _run_config(run_dir)}
    metrics.update(rounds=[], feedback={}, pairs={}, training={}, timings_s={}, examples=[])
    stage_code: dict[str, dict] = {}
    for step in plan:
        m = read_manifest(run_dir / step.name)
        if not m:
            continue
        metrics["timings_s"][step.name] = m.get("wall_s")
        if isinstance(m.get("code_version"), dict):
            stage_code[step.name] = m["code_version"]
        KINDS[step.kind].report(metrics, step.group, m.get("summary", {}), run_dir / step.name)
    metrics["code"] = _code(metrics["status"].get("code_version"), stage_code)
    metrics["warnings"] = find_warnings(run_dir, plan, _health(metrics["config"]))
    metrics["judge_uses"] = _judge_uses(metrics["config"])
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2, default=str) + "\n")
    return metrics


def _code(run: dict | None, stages: dict[str, dict]) -> dict:
    """The code of the last run on this folder and of each finished stage; ``other``: the stages made by
    other code than the last run's (a resumed run on changed code keeps them)."""
    digest = (run or {}).get("digest")
    other = [name for name, code in stages.items() if digest and code.get("digest") != digest]
    return {"run": run, "stages": stages, "other": other}


ROUND_KEYS = (
    "pass@1",
    "instruction_pass_rate",
    "instruction_pass_answered_rate",
    "win_rate_vs_previous",
    "mean_response_tokens",
    "judge_invalid_rate",
)
SAMPLED = "sampled_pass@"


def _number(value: object) -> float:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else float("nan")


def round_panels(rounds: list[dict]) -> list[tuple[str, dict[str, list[float]]]]:
    """The per-round plot's panels: ``(title, {line name: one value per round})`` (NaN where a round
    lacks the figure), for the figures at least one round has. ``sampled_pass@k`` (``eval.code_sampled``)
    is one panel beside greedy pass@1 with a line per k, ascending, so a run with several k stays one
    row of readable panels."""
    panels: list[tuple[str, dict[str, list[float]]]] = []
    ks = sorted(
        {
            int(k[len(SAMPLED) :])
            for r in rounds
            for k in r
            if k.startswith(SAMPLED) and k[len(SAMPLED) :].isdigit()
        }
    )
    for key in ROUND_KEYS:
        if any(_number(r.get(key)) == _number(r.get(key)) for r in rounds):
            panels.append((key, {key: [_number(r.get(key)) for r in rounds]}))
        if key == "pass@1":
            lines = {f"k={k}": [_number(r.get(f"{SAMPLED}{k}")) for r in rounds] for k in ks}
            lines = {name: ys for name, ys in lines.items() if any(y == y for y in ys)}
            if lines:
                panels.append((f"{SAMPLED}k", lines))
    return panels


def _plots(run_dir: Path, metrics: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    made = []
    rounds = metrics["rounds"]
    panels = round_panels(rounds)
    if panels:
        fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
        labels = [r.get("label", str(r.get("round"))) for r in rounds]
        for ax, (title, lines) in zip(axes[0], panels, strict=True):
            for name, ys in lines.items():
                ax.plot(range(len(ys)), ys, marker="o", label=name if len(lines) > 1 else None)
                # one line: every point's value; several: the last point's of each, so they stay legible
                points = list(enumerate(ys)) if len(lines) == 1 else list(enumerate(ys))[-1:]
                for x, y in points:
                    if y == y:
                        ax.annotate(
                            f"{y:.3g}",
                            (x, y),
                            textcoords="offset points",
                            xytext=(0, 5),
                            ha="center",
                            fontsize=8,
                        )
            ax.set_xticks(range(len(labels)), labels, rotation=30, fontsize=8)
            ax.set_title(title)
            ax.grid(alpha=0.3)
            if len(lines) > 1:
                ax.legend(fontsize=7)
        fig.tight_layout()
        # the panels in the PNG's own text (its Description), for readers and tests that read no pixels
        described = "; ".join(title if len(ls) == 1 else f"{title} ({', '.join(ls)})" for title, ls in panels)
        fig.savefig(run_dir / "per_round.png", dpi=110, metadata={"Description": described})
        plt.close(fig)
        made.append("per_round.png")
    fb = metrics["feedback"]
    if fb:
        groups = list(fb)
        reasons = sorted({r for g in groups for r in fb[g]["drops"]})
        width = max(4, 1.6 * len(groups) + 2)
        fig, (ax, ax_drop) = plt.subplots(1, 2, figsize=(2 * width, 3.4))
        ax.bar(groups, [fb[g]["counts"].get("pairs_out", 0) for g in groups])
        ax.set_title("feedback: pairs made")
        bottom = [0.0] * len(groups)  # drops count prompts (problems), not pairs: a panel of their own
        for r in reasons:
            values = [fb[g]["drops"].get(r, 0) for g in groups]
            ax_drop.bar(groups, values, bottom=bottom, label=r)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax_drop.set_title("feedback: prompts dropped, by reason")
        if reasons:
            ax_drop.legend(fontsize=7)
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
                if ys:  # a curve of a few logged steps is drawn with markers, so every point shows
                    marker = "o" if len(ys) <= SHORT_CURVE else None
                    ax.plot(range(1, len(ys) + 1), ys, label=group, marker=marker, markersize=4)
            ax.set_title(key)
            ax.set_xlabel("logged step")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(run_dir / "training.png", dpi=110)
        plt.close(fig)
        made.append("training.png")
    return made


def _judge_uses(config: dict) -> list[str] | None:
    """What the run's judge is used for (feedback, win rate, final reward); [] for a run that uses no
    judge (the report then shows no judge line); None when the saved config cannot say."""
    from rlaif.config import RunConfig
    from rlaif.pipeline.judging import judge_uses

    try:
        return [use.purpose for use in judge_uses(RunConfig.model_validate(config))]
    except Exception:  # a report must render for any run directory, including old or broken ones
        return None


def _embedded(path: Path) -> dict[str, str]:
    """The plot as the template shows it: its file name and a ``data:`` URI of its bytes."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return {"name": path.name, "src": f"data:image/png;base64,{data}"}


def _run_config(run_dir: Path) -> dict:
    """The run's validated config as saved in ``config.yaml`` (for the report's header)."""
    import yaml

    try:
        data = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _health(config: dict):
    """The run's health thresholds as saved in ``config.yaml`` (the defaults where unreadable)."""
    from pydantic import ValidationError

    from rlaif.config.health import HealthConfig

    try:
        return HealthConfig.model_validate(config.get("health") or {})
    except ValidationError:
        return HealthConfig()


def write_report(run_dir: Path, metrics: dict) -> Path:
    """Draw the plots and render ``report.html`` from the template; returns its path."""
    import jinja2

    run_dir = Path(run_dir)
    images = [_embedded(run_dir / name) for name in _plots(run_dir, metrics)]
    template_dir = Path(__file__).resolve().parents[1] / "assets"
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dir),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    page = env.get_template("report.html.j2").render(**build_view(metrics), images=images)
    out = run_dir / "report.html"
    atomic_write_text(out, page)
    return out
