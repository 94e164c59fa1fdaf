"""The engine block's scale-out fields: replicas of a served model (urls) and Ray replicas."""

from __future__ import annotations

import pytest

from rlaif.config.loading import load_run_config
from rlaif.errors import ConfigError

MINIMAL = """
name: t
policy: {path: /tmp/model}
prompts: {kind: jsonl, path: prompts.jsonl}
feedback: {source: rlcd}
"""


def load(tmp_path, overrides):
    path = tmp_path / "run.yaml"
    path.write_text(MINIMAL)
    return load_run_config(path, overrides)


def test_urls_and_ray_blocks_validate(tmp_path):
    cfg = load(tmp_path, ["engine.kind=openai", "engine.urls=[http://a:8000/v1, http://b:8000/v1]"])
    assert cfg.engine.servers == ["http://a:8000/v1", "http://b:8000/v1"]
    assert load(tmp_path, ["engine.kind=openai", "engine.url=http://a/v1"]).engine.servers == ["http://a/v1"]
    cfg = load(tmp_path, ["engine.kind=ray", "engine.replicas=2", "engine.address=auto"])
    assert (cfg.engine.replicas, cfg.engine.address) == (2, "auto")
    cfg = load(tmp_path, ["judge.model=openai", "judge.engine={kind: openai, urls: [http://j:1/v1]}"])
    assert cfg.judge.engine.servers == ["http://j:1/v1"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["engine.kind=openai"], "needs engine.url or engine.urls"),
        (["engine.kind=openai", "engine.url=http://a/v1", "engine.urls=[http://b/v1]"], "not both"),
        (["engine.kind=openai", "engine.urls=[]"], "an empty list"),
        (["engine.kind=openai", "engine.urls=[a:8000]"], "needs http(s):// URLs, got ['a:8000']"),
        (["engine.kind=openai", "engine.urls=[http://a/v1, http://a/v1]"], "lists a server twice"),
        (["engine.urls=[http://a/v1]"], "engine.urls is for kind=openai, not kind=vllm"),
        (["engine.replicas=2"], "engine.replicas is for kind=ray"),
        (
            ["engine.kind=openai", "engine.url=http://a/v1", "engine.address=auto"],
            "engine.address is for kind=ray",
        ),
        (["engine.kind=ray", "engine.replicas=0"], "engine.replicas"),
        (["engine.data_parallel_size=2"], "vLLM refuses data parallelism in one process"),
    ],
)
def test_bad_engine_blocks_are_one_line_errors(tmp_path, overrides, message):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, overrides)
    assert message in str(err.value) and "\n" not in str(err.value)
