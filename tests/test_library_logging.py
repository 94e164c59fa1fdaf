"""rlaif used as a library (not the CLI): vLLM's log stays off stdout, so a program's own output is
clean. Both run real processes: one starts the engine on the tiny model and generates; one points an
already-imported vLLM logger (which vLLM configured for stdout) elsewhere."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "RLAIF_QUIET"))}
    return {**env, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **extra}


def _run(script: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        env=_clean_env(**env),
        capture_output=True,
        text=True,
        timeout=600,
    )


ENGINE_SCRIPT = """
    import sys
    from rlaif.engines import Sampling, VLLMEngine

    if __name__ == "__main__":
        engine = VLLMEngine(sys.argv[1], max_model_len=256, kv_cache_memory_bytes=256 << 20, progress=False)
        (completions,) = engine.generate(["Hello"], Sampling(max_tokens=4, temperature=0.0, seed=0))
        print("generated", len(completions))
        engine.close()
"""


def test_an_engine_started_from_python_prints_nothing_of_vllms_on_stdout(tiny_model_dir):
    out = _run(ENGINE_SCRIPT, str(tiny_model_dir))
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout == "generated 1\n"
    assert "INFO" in out.stderr and "vllm" in out.stderr.lower()  # the log is there, on stderr


def test_a_vllm_logger_already_pointed_at_stdout_is_moved_to_stderr():
    script = """
        import vllm.logger
        from vllm.config.logging import LoggingConfig
        from rlaif.engines.vllm import _vllm_logs_to_stderr

        vllm.logger.configure_logging(LoggingConfig())  # as an earlier vllm.LLM in this process did
        log = vllm.logger.init_logger("vllm.test")
        log.warning("before the engine")   # vLLM's own default: stdout
        _vllm_logs_to_stderr()
        log.warning("after the move")
    """
    out = _run(script)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "before the engine" in out.stdout and "after the move" not in out.stdout
    assert "after the move" in out.stderr
    chosen = _run(script, VLLM_LOGGING_STREAM="ext://sys.stdout")  # the user's choice is kept
    assert "after the move" in chosen.stdout, chosen.stderr[-3000:]
