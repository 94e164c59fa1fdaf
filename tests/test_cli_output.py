"""stdout carries results only, third-party logs are quiet unless ``-v``: through the real CLI.

``rlaif generate`` starts a real vLLM engine (EngineCore and worker processes) on the tiny model. By
default its stdout must be exactly the JSON lines of the result and its stderr must hold no vLLM INFO
line. With ``-v`` the logs come back, on stderr; with vLLM told to log to *stdout* they still do not
reach the result, because the CLI points file descriptor 1 (inherited by the engine processes) at
stderr and keeps the real stdout for results.
"""

from __future__ import annotations

import json

import pytest
from cli_process import CliProcess


def _generate(tmp_path, tiny_model_dir, name, *top, env=None):
    args = [*top, "generate", "--model", str(tiny_model_dir), "--prompt", "hello", "--prompt", "a b c",
            "--n", "2", "--max-tokens", "4", "--seed", "0", "--kv-cache-gb", "0.25", "--max-model-len", "256"]  # fmt: skip
    cli = CliProcess(args, tmp_path, name, env=env)
    try:
        assert cli.finish(timeout=600) == 0, cli.stderr()[-3000:]
        assert cli.survivors() == []
    finally:
        cli.cleanup()
    rows = [json.loads(line) for line in cli.stdout().splitlines()]
    assert [r["prompt_index"] for r in rows] == [0, 1] and all(len(r["texts"]) == 2 for r in rows)
    return cli.stderr()


def test_generate_prints_only_results_and_quiet_logs(tmp_path, tiny_model_dir):
    err = _generate(tmp_path, tiny_model_dir, "quiet")
    assert " INFO " not in err and "WARNING" not in err, err[-3000:]
    assert "Loading safetensors checkpoint shards" not in err


@pytest.mark.slow
def test_verbose_brings_logs_back_on_stderr_even_when_vllm_logs_to_stdout(tmp_path, tiny_model_dir):
    err = _generate(
        tmp_path, tiny_model_dir, "verbose", "-v", env={"VLLM_LOGGING_STREAM": "ext://sys.stdout"}
    )
    assert " INFO " in err


def test_help_is_still_printed_on_stdout(tmp_path):
    cli = CliProcess(["--help"], tmp_path, "help")
    assert cli.finish(timeout=120) == 0
    assert "Usage" in cli.stdout() and "--verbose" in cli.stdout()


def test_an_unknown_option_is_one_usage_error_not_a_traceback(tmp_path):
    cli = CliProcess(["validate", "pipelines/demo.yaml", "--no-such-option", "x"], tmp_path, "badopt")
    assert cli.finish(timeout=120) == 2
    assert "No such option: --no-such-option" in cli.stderr()
    assert "Traceback" not in cli.stderr() and cli.stdout() == ""
