"""``rlaif judge-eval --server``: the judge asks an OpenAI-compatible server, tested against a real
``vllm serve`` on loopback with the tests' tiny model (and one-line errors for bad combinations)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from rlaif.cli import main
from rlaif.records import Judgment, read_jsonl, write_jsonl

REPO = Path(__file__).resolve().parents[2]


def pairs_file(tmp_path: Path) -> Path:
    rows = [
        {"prompt": f"Say a word about {k}.", "chosen": f"A fine word {k}.", "rejected": "no"}
        for k in range(3)
    ]
    write_jsonl(tmp_path / "pairs.jsonl", rows)
    return tmp_path / "pairs.jsonl"


def test_judge_eval_on_a_real_vllm_serve(vllm_server, tmp_path):
    """On the session's ``vllm serve`` (conftest.py), served as ``tiny``."""
    out = tmp_path / "judgments.jsonl"
    logged = len(vllm_server.log.read_text(errors="replace"))  # other tests' requests: not this run's
    args = ["judge-eval", "--server", vllm_server.url, "--served-model", "tiny", "--judge", "pairwise"]
    args += [
        "--pairs",
        str(pairs_file(tmp_path)),
        "--out",
        str(out),
        "--summary-out",
        str(tmp_path / "s.json"),
    ]
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "rlaif.cli", *args], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["n"] == 3 and summary["judgments"] == 6  # both orders
    judgments = read_jsonl(out, Judgment)
    assert len(judgments) == 6 and {j.judge_model for j in judgments} == {"tiny"}
    served = vllm_server.log.read_text(errors="replace")[logged:]
    assert re.search(r"POST /v1/(chat/)?completions", served)  # asked the server, not an in-process engine


def test_judge_eval_server_errors_are_one_line(tmp_path, capsys):
    pairs = str(pairs_file(tmp_path))
    cases = {
        ("--server", "http://127.0.0.1:9/v1", "--model", "m"): "not both",
        ("--server", "127.0.0.1:8000"): "needs an http(s):// base URL",
        ("--server", "http://127.0.0.1:9/v1", "--adapter", "a"): "--lora-modules NAME=DIR",
        ("--served-model", "tiny"): "pass --server URL too",
        ("--server", "http://127.0.0.1:9/v1"): "127.0.0.1:9",  # nothing listens on port 9
    }
    for extra, message in cases.items():
        assert main(["judge-eval", "--pairs", pairs, "--judge", "pairwise", *extra]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("error: ") and message in line, line


def test_the_readme_server_judge_block_is_a_valid_judge_config():
    """The README's `judge:` block for a server is what a run config accepts (an OpenAI engine)."""
    import yaml

    from rlaif.config.engine import JudgeConfig

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"```yaml\n(judge:\n  model: openai.*?)```", readme, re.S)
    judge = JudgeConfig.model_validate(yaml.safe_load(block)["judge"])
    assert judge.model != "policy" and judge.engine.kind == "openai"
    assert judge.engine.servers == ["http://127.0.0.1:8001/v1"] and judge.engine.model == "judge"
