"""``rlaif validate``: the one judge setting and its kind per use, data files read up front (malformed
records skipped and counted, or an error with ``malformed: error``), and ``max_model_len`` against the
model's config.json. Every failure is one ``error:`` line naming the key. The CLI runs in-process
(``rlaif.cli.main(argv)``); one test runs it as its own process, and ``rlaif run`` always does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cli_inprocess  # next to this test
import pytest
import yaml
from cli_results import fails

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
HH = HERE / "assets" / "hh_with_malformed.jsonl"  # 12 HH harmless-base test records + line 668 (4th here)


def rlaif_process(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)])}
    return subprocess.run(
        [sys.executable, "-m", "rlaif.cli", *args], capture_output=True, text=True, timeout=120, env=env
    )


def rlaif(*args: str) -> subprocess.CompletedProcess:
    """``rlaif validate`` in-process (the same output and exit code); other commands in a process."""
    return cli_inprocess.rlaif(*args) if args[0] == "validate" else rlaif_process(*args)


@pytest.fixture
def model_dir(tmp_path) -> Path:
    """A model directory as far as validation looks: a config.json with a 1024-token context."""
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "llama", "max_position_embeddings": 1024}))
    return d


@pytest.fixture
def config(tmp_path, model_dir) -> Path:
    cfg = {
        "name": "checks",
        "policy": {"path": str(model_dir)},
        "engine": {"max_model_len": 1024},
        "prompts": {"kind": "hh", "path": str(HH)},
        "feedback": {"source": "self_rewarding"},
        "eval": {"win_rate_prompts": {"kind": "hh", "path": str(HH), "limit": 4}},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_malformed_records_are_skipped_counted_and_named(config):
    res = rlaif_process("validate", str(config))  # the CLI as its own process: notes and the ok line
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("ok:")
    # both the prompts and the eval prompts say how many records were skipped, and where
    assert "'prompts': skipped 1 malformed record(s), using 12" in res.stderr
    assert f"{HH}:4: field 'chosen': turn 5 is 'Assistant:'" in res.stderr
    assert "'eval.win_rate_prompts': skipped 1" in res.stderr
    fails(
        rlaif("validate", str(config), "prompts.malformed=error"),
        str(config),
        "'prompts'",
        f"{HH}:4",
        "turns must alternate",
    )


def test_data_errors_come_before_any_engine(config, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    fails(rlaif("validate", str(config), f"prompts.path={empty}"), "'prompts'", "no prompts to use")
    fails(
        rlaif("validate", str(config), "eval.win_rate_prompts.path=/nope.jsonl"),
        "'eval.win_rate_prompts.path'",
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"nothing": 1}\n')
    fails(
        rlaif(
            "validate", str(config), f"prompts.path={bad}", "prompts.kind=jsonl", "prompts.malformed=error"
        ),
        f"{bad}:2",
    )


def test_max_model_len_is_checked_against_config_json(config, model_dir, tmp_path):
    fails(
        rlaif("validate", str(config), "engine.max_model_len=4096"),
        "'engine.max_model_len' is 4096",
        "context length 1024",
        "max_position_embeddings=1024",
        str(model_dir / "config.json"),
    )
    judge_model = tmp_path / "judge"
    judge_model.mkdir()
    (judge_model / "config.json").write_text(json.dumps({"text_config": {"max_position_embeddings": 512}}))
    fails(
        rlaif("validate", str(config), f"judge.model={judge_model}", "judge.engine.max_model_len=2048"),
        "'judge.engine.max_model_len' is 2048",
        "context length 512",
    )
    ok = rlaif("validate", str(config), f"judge.model={judge_model}", "judge.engine.max_model_len=512")
    assert ok.returncode == 0, ok.stderr


def test_one_judge_setting_checked_for_every_use(config, tmp_path):
    # a Python pointwise judge for self-rewarding feedback; the win rate needs its own pairwise judge
    fails(
        rlaif("validate", str(config), "judge.template=pipeline_judges:length_score"),
        "'judge.template'",
        "is a pointwise judge, but the win rate (eval.win_rate_prompts) needs a pairwise or principle judge",
        "eval.win_rate_judge",
    )
    ok = rlaif(
        "validate",
        str(config),
        "judge.template=pipeline_judges:length_score",
        "eval.win_rate_judge=pipeline_judges:prefer_shorter",
    )
    assert ok.returncode == 0, ok.stderr
    # a pairwise judge where self-rewarding scores candidates one by one
    fails(
        rlaif("validate", str(config), "judge.template=pipeline_judges:prefer_shorter"),
        "'judge.template'",
        "is a pairwise judge, but feedback.source=self_rewarding needs a pointwise judge",
    )
    # a pointwise judge as the win-rate judge
    fails(
        rlaif("validate", str(config), "eval.win_rate_judge=self_rewarding_rubric"),
        "'eval.win_rate_judge'",
        "is a pointwise judge",
    )
    # rl_cai needs a principle judge; the final round's judge reward needs a pointwise one
    fails(
        rlaif("validate", str(config), "feedback.source=rl_cai", "judge.template=pairwise"),
        "'judge.template'",
        "needs a principle judge",
    )
    fails(
        rlaif("validate", str(config), "final.kind=ppo", "final.reward=judge", "eval.win_rate_judge=pairwise",
              "judge.template=cai_principle_choice", "feedback.source=rl_cai"),
        "'judge.template'",
        "final.reward=judge needs a pointwise judge",
    )  # fmt: skip
    # the source's own judge keys are not a second place to set the judge
    fails(
        rlaif("validate", str(config), "feedback.options.judge_template=self_rewarding_rubric"),
        "'feedback.options.judge_template'",
        "judge.template",
    )
    fails(
        rlaif("validate", str(config), "feedback.source=rlcd", "feedback.options.rescore.judge=pairwise"),
        "'feedback.options.rescore.judge'",
        "judge.template",
    )
    # a judge nothing uses is a mistake, not a silent no-op
    fails(
        rlaif(
            "validate",
            str(config),
            "feedback.source=rlcd",
            "eval.win_rate_prompts=null",
            "judge.template=pairwise",
        ),
        "'judge.template' is set but no stage of this run uses a judge",
    )


def test_template_judge_with_parser_shorthand(config, tmp_path):
    tpl = tmp_path / "my_rubric.j2"
    tpl.write_text(
        "---\nname: my_rubric\nvariables: [prompt, response]\nparser: score\n---\n"
        "Rate the answer from 1 to 5.\n{{ prompt }}\n{{ response }}\nEnd with 'Score: N'.\n"
    )
    ok = rlaif("validate", str(config), f"judge.template={tpl}", "eval.win_rate_judge=pairwise")
    assert ok.returncode == 0, ok.stderr
    # the same template as the win-rate judge: the kind is inferred from its variables (pointwise)
    fails(rlaif("validate", str(config), f"eval.win_rate_judge={tpl}"), "'eval.win_rate_judge'", "pointwise")


def test_max_model_len_of_a_model_built_during_the_run_is_checked_before_the_engine_starts(tmp_path):
    cfg = {
        "name": "built",
        "output_dir": str(tmp_path / "runs"),
        "policy": {"path": str(tmp_path / "runs" / "built" / "model"), "build_tiny": {"vocab_size": 300}},
        "engine": {"max_model_len": 4096},
        "prompts": {"kind": "hh", "path": str(HH)},
        "feedback": {"source": "self_rewarding"},
    }
    path = tmp_path / "built.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert rlaif("validate", str(path)).returncode == 0  # the model does not exist yet
    res = rlaif("run", str(path))
    # the first stage to start the engine: round 0's evaluation measures nothing and starts none
    fails(res, "round_1/feedback", "'engine.max_model_len' is 4096", "context length 1024", str(path))
    assert "vllm" not in res.stderr.lower()  # refused before vLLM was imported, let alone started
    assert '"stage_failed"' in (tmp_path / "runs" / "built" / "metrics.jsonl").read_text()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("feedback.options.seed=3", "'feedback.options.seed' is decided by the run"),
        (
            "feedback.options.filter.dedup=false",
            "'feedback.options.filter': a run filters pairs in one place",
        ),
    ],
)
def test_run_decided_values_and_source_filters_are_one_line_errors(config, override, message):
    fails(rlaif("validate", str(config), override), str(config), message)


def test_rlcf_options_take_the_nested_sampling_block(config):
    rlcf = ["feedback.source=rlcf", "prompts.kind=demo_code", "eval.win_rate_prompts=null"]
    assert rlaif("validate", str(config), *rlcf, "feedback.options.sampling.max_tokens=32").returncode == 0
    fails(
        rlaif("validate", str(config), *rlcf, "feedback.options.max_tokens=32"), "feedback.options.max_tokens"
    )
