"""``engine.api_key_env``: the key in that environment variable reaches an OpenAI-compatible server as a
Bearer token (a real HTTP server on loopback that, like ``vllm serve --api-key``, answers 401 without
it); an unset variable is one error naming it; the key is for kind=openai only."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import ValidationError

from rlaif.config import EngineConfig
from rlaif.errors import ConfigError, EngineError
from rlaif.pipeline.engines import build_engine

KEY = "sk-test-123"


class _Server(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's spelling
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps({"object": "list", "data": [{"id": "judge", "object": "model"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_the_key_from_the_environment_reaches_the_server(server_url, monkeypatch):
    cfg = EngineConfig(kind="openai", url=server_url, api_key_env="JUDGE_KEY")
    monkeypatch.setenv("JUDGE_KEY", KEY)
    engine = build_engine(cfg, "unused", lora_rank=None, key="judge.engine")
    assert engine.model_name == "judge"  # the server listed its model only with the key

    with pytest.raises(EngineError):  # without the key the same server refuses
        build_engine(EngineConfig(kind="openai", url=server_url), "unused", lora_rank=None)
    monkeypatch.delenv("JUDGE_KEY")
    with pytest.raises(
        ConfigError, match=r"^judge\.engine\.api_key_env: the environment variable JUDGE_KEY is not set$"
    ):
        build_engine(cfg, "unused", lora_rank=None, key="judge.engine")


def test_api_key_env_is_for_openai_engines_only():
    with pytest.raises(ValidationError, match="engine.api_key_env is for kind=openai, not kind=vllm"):
        EngineConfig(api_key_env="JUDGE_KEY")
