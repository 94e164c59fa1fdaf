"""Run config loading, overrides and error messages; every shipped pipeline validates."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_inprocess import rlaif  # next to this test

from rlaif.config.loading import load_run_config
from rlaif.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
PIPELINES = sorted((REPO / "pipelines").glob("*.yaml"))

MINIMAL = """
name: t
policy: {path: /tmp/model}
prompts: {kind: jsonl, path: prompts.jsonl}
feedback: {source: rlcd}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_shipped_pipelines_exist():
    names = {p.stem for p in PIPELINES}
    assert {"self_rewarding", "rlcd_harmless", "constitutional", "code_rlcf", "demo"} <= names


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.stem)
def test_every_shipped_pipeline_validates_and_names_its_command(path, shared_data, tmp_path):
    text = path.read_text()
    assert text.startswith("#") and "rlaif " in text.split("\nname:")[0], (
        "header comment must give the command"
    )
    # the GPU examples and the SmolLM2 run name a model the user supplies (a hub name is only an example;
    # training loads local folders): validate them with a local model folder, as their header says
    args = []
    if "build_tiny:" not in text:
        model = tmp_path / "local_model"
        model.mkdir()
        (model / "config.json").write_text('{"model_type": "llama", "max_position_embeddings": 32768}')
        args = [f"policy.path={model}"]
    res = rlaif("validate", str(path), *args)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("ok:")


def test_overrides_are_applied_as_yaml_scalars(tmp_path):
    cfg = load_run_config(
        write(tmp_path, MINIMAL), ["rounds=3", "dpo.beta=0.25", "final.kind=ppo", "name=other"]
    )
    assert cfg.rounds == 3 and cfg.dpo == {"beta": 0.25} and cfg.final.kind == "ppo" and cfg.name == "other"


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        (MINIMAL + "bogus: 1\n", [], "unknown key 'bogus'"),
        (MINIMAL, ["engine.kind=openai"], "engine.kind=openai needs engine.url"),
        (MINIMAL, ["rounds=many"], "field 'rounds'"),
        (MINIMAL, ["policy.nope=1"], "unknown key 'policy.nope'"),
        (MINIMAL, ["roundz=2"], "unknown key 'roundz' (did you mean 'rounds'?)"),
        (MINIMAL, ["eval.max_token=3"], "unknown key 'eval.max_token' (did you mean 'eval.max_tokens'?)"),
        ("name: t\n", [], "missing required key"),
        ("- a\n- b\n", [], "expected a mapping"),
        ("name: [\n", [], "not valid YAML"),
        (MINIMAL, ["rounds"], "must look like key.sub=value"),
    ],
)
def test_bad_configs_name_the_file_and_key(tmp_path, text, overrides, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_run_config(path, overrides)
    assert message in str(err.value)
    if "override" not in message and "key.sub" not in message:
        assert str(path) in str(err.value)


def test_validate_cli_bad_inputs_are_one_line_errors(tmp_path, shared_data):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "hi"}\n')
    (tmp_path / "config.json").write_text('{"model_type": "llama", "max_position_embeddings": 4096}')
    ok = write(tmp_path, MINIMAL.replace("/tmp/model", str(tmp_path)).replace("prompts.jsonl", str(prompts)))
    res = rlaif("validate", str(ok))
    assert res.returncode == 0, res.stderr
    win_rate = ["eval.win_rate_prompts.kind=jsonl", f"eval.win_rate_prompts.path={prompts}"]
    cases = [
        (["feedback.options.bogus=1"], "unknown key 'feedback.options.bogus'"),
        # a key that moved into a nested block, and a misspelt one, are named as what was meant
        (
            ["feedback.options.temperature=0.5"],
            "unknown key 'feedback.options.temperature' (did you mean 'feedback.options.sampling.temperature'?)",
        ),
        (["dpo.learnig_rate=1e-5"], "unknown key 'dpo.learnig_rate' (did you mean 'dpo.learning_rate'?)"),
        (["feedback.options.sampling.max_tokens=0"], "feedback.options"),
        (["prompts.path=/nonexistent.jsonl"], "file not found"),
        (["policy.path=/nonexistent/model"], "model directory not found"),
        (["feedback.source=nope"], "unknown feedback source 'nope'"),
        (["dpo.loss_type=nope"], "dpo.loss_type"),
        # a source's template that cannot render its step: found before any engine starts
        (["feedback.options.chat_template=cai_critique"], "'feedback.options.chat_template'"),
        (["judge.template=missing_template", *win_rate], "'judge.template': no template named"),
        (["final.kind=ppo", "final.options.max_steps=0"], "final.options.max_steps"),
        # PPO speaks TRL's words: an old key names its new spelling
        (["final.kind=ppo", "final.options.steps=3"], "did you mean 'final.options.max_steps'?"),
    ]
    for overrides, message in cases:
        res = rlaif("validate", str(ok), *overrides)
        assert res.returncode == 2, (overrides, res.stdout, res.stderr)
        assert message in res.stderr and str(ok) in res.stderr, (overrides, res.stderr)
        assert "Traceback" not in res.stderr
    # judge templates: a variable the judge never supplies, and one used without being declared
    pairwise = (REPO / "prompts" / "pairwise.j2").read_text()
    extra = tmp_path / "extra_var.j2"
    extra.write_text(
        pairwise.replace(
            "variables: [prompt, response_a, response_b]",
            "variables: [prompt, response_a, response_b, house_style]",
        )
    )
    undeclared = tmp_path / "undeclared.j2"
    undeclared.write_text(pairwise.rstrip() + "\n{{ house_style }}\n")
    for template, message in (
        (extra, "declares variable(s) house_style"),
        (undeclared, "'house_style' is undefined"),
    ):
        res = rlaif("validate", str(ok), f"judge.template={template}", *win_rate)
        assert res.returncode == 2 and message in res.stderr and str(ok) in res.stderr, res.stderr
        assert "'judge.template'" in res.stderr and "Traceback" not in res.stderr
    missing = rlaif("validate", str(tmp_path / "none.yaml"))
    assert missing.returncode == 2 and "config file not found" in missing.stderr


def test_suggest_key_looks_one_level_down_then_at_spellings():
    from pydantic import BaseModel

    from rlaif.errors import suggest_key

    class Inner(BaseModel):
        temperature: float = 1.0

    class Outer(BaseModel):
        sampling: Inner | None = None
        learning_rate: float = 1.0

    assert suggest_key(Outer, ("temperature",)) == "sampling.temperature"
    assert suggest_key(Outer, ("learnig_rate",)) == "learning_rate"
    assert suggest_key(Outer, ("sampling", "temprature")) == "sampling.temperature"
    assert suggest_key(Outer, ("bogus",)) is None
    assert suggest_key(Outer, ("nothere", "temperature")) is None  # no such block: no guess


@pytest.mark.parametrize(
    ("changes", "old", "meant"),
    [
        ({"dpo": {"epochs": 2}}, "dpo.epochs", "dpo.num_train_epochs"),
        (
            {"dpo": {"per_device_batch_size": 2}},
            "dpo.per_device_batch_size",
            "dpo.per_device_train_batch_size",
        ),
        ({"dpo": {"lr_scheduler": "cosine"}}, "dpo.lr_scheduler", "dpo.lr_scheduler_type"),
        (
            {"final": {"kind": "grpo", "reward": "judge", "options": {"per_device_batch_size": 2}}},
            "final.options.per_device_batch_size",
            "final.options.per_device_train_batch_size",
        ),
    ],
)
def test_trainers_speak_trls_words_and_name_the_new_key_for_an_old_one(run_config, changes, old, meant):
    from rlaif.pipeline.compile import resolve

    with pytest.raises(ConfigError, match=rf"unknown key '{old}' \(did you mean '{meant}'\?\)"):
        resolve(run_config(**changes))
