"""OpenAIEngine: fault handling against a local stub server, and the real thing against `vllm serve`."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from http.server import ThreadingHTTPServer

import pytest
from stub_server import JsonHandler

from rlaif.engines.base import Sampling
from rlaif.engines.openai import OpenAIEngine
from rlaif.errors import EngineError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FlakyServer:
    """Answers 503 to the first attempt of every third prompt and stalls the first attempt of every
    fifth (longer than the client timeout), so retries must finish the batch."""

    def __init__(self):
        self.attempts: Counter[str] = Counter()
        self.served: Counter[str] = Counter()
        self.lock = threading.Lock()
        outer = self

        class Handler(JsonHandler):
            def do_GET(self):
                self._send(200, {"data": [{"id": "stub"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                text = body["messages"][-1]["content"]
                number = int(text.split()[-1])
                with outer.lock:
                    outer.attempts[text] += 1
                    attempt = outer.attempts[text]
                if attempt == 1 and number % 3 == 0:
                    return self._send(503, {"error": "overloaded"})
                if attempt == 1 and number % 5 == 0:
                    time.sleep(1.5)  # client timeout is 0.5 s
                    return self._send(200, {"choices": []})
                with outer.lock:
                    outer.served[text] += 1
                choices = [
                    {
                        "index": i,
                        "message": {"role": "assistant", "content": f"echo {number} #{i}"},
                        "finish_reason": "stop",
                    }
                    for i in reversed(range(body["n"]))  # out of order on purpose
                ]
                self._send(200, {"choices": choices})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


def test_retries_finish_every_prompt_exactly_once_in_order():
    server = FlakyServer()
    try:
        engine = OpenAIEngine(server.url, concurrency=4, timeout_s=0.5, backoff_s=0.01, max_retries=3)
        prompts = [[{"role": "user", "content": f"prompt {i}"}] for i in range(30)]
        out = engine.generate(prompts, Sampling(n=2, max_tokens=4))
    finally:
        server.close()
    assert [[c.text for c in comps] for comps in out] == [[f"echo {i} #0", f"echo {i} #1"] for i in range(30)]
    # 10 prompts (multiples of 3) got a 503 first, 4 more (5, 10, 20, 25) stalled past the timeout
    assert engine.stats["retries"] == 14
    assert len(server.served) == 30 and set(server.served.values()) == {1}


def test_gives_up_with_clear_error_after_retries():
    server = FlakyServer()
    try:
        engine = OpenAIEngine(server.url, timeout_s=0.5, backoff_s=0.01, max_retries=0)
        with pytest.raises(EngineError, match="prompt 0 failed after 1 attempts"):
            engine.generate([[{"role": "user", "content": "prompt 3"}]], Sampling())
    finally:
        server.close()


def test_sampling_settings_must_match_the_prompts_one_to_one():
    server = FlakyServer()
    try:
        engine = OpenAIEngine(server.url, timeout_s=0.5, backoff_s=0.01)
        with pytest.raises(EngineError, match="2 sampling settings for 1 prompts"):
            engine.generate([[{"role": "user", "content": "prompt 1"}]], [Sampling(), Sampling()])
        assert not server.attempts  # refused before any request was sent
        out = engine.generate(
            [[{"role": "user", "content": f"prompt {i}"}] for i in (1, 2)], [Sampling(n=1), Sampling(n=2)]
        )
        assert [len(o) for o in out] == [1, 2]
    finally:
        server.close()


def test_unreachable_server_and_unknown_model():
    with pytest.raises(EngineError, match="cannot reach"):
        OpenAIEngine(f"http://127.0.0.1:{free_port()}/v1", timeout_s=2)
    server = FlakyServer()
    try:
        with pytest.raises(EngineError, match="does not serve model 'other'"):
            OpenAIEngine(server.url, model="other")
    finally:
        server.close()


def test_real_vllm_serve_chat_and_completions(vllm_server):
    engine = OpenAIEngine(vllm_server.url, concurrency=3)  # the session's (conftest.py)
    assert engine.model_name == "tiny"
    convs = [[{"role": "user", "content": f"Tell me about number {i}."}] for i in range(5)]
    out = engine.generate(convs, Sampling(n=2, max_tokens=8, seed=7, logprobs=3))
    assert len(out) == 5
    for comps in out:
        assert [c.index for c in comps] == [0, 1]
        for c in comps:
            assert c.token_ids is not None and 1 <= len(c.token_ids) <= 8
            assert c.logprobs and all(1 <= len(t.top) <= 3 and t.logprob <= 0 for t in c.logprobs)
    again = engine.generate(convs[:1], Sampling(n=2, max_tokens=8, seed=7, logprobs=3))
    assert [c.text for c in again[0]] == [c.text for c in out[0]]
    plain = engine.generate(["hello", "world"], Sampling(max_tokens=5, temperature=0, logprobs=2))
    assert len(plain) == 2 and all(p[0].logprobs for p in plain)
    # include_stop reaches the server: the stop string that ended the greedy text stays in it
    greedy = Sampling(max_tokens=24, temperature=0)
    (full,) = engine.generate(["hello"], greedy)[0]
    stop = full.text[6:9]
    assert len(stop) == 3 and stop.strip(), full.text
    (kept,) = engine.generate(["hello"], greedy.model_copy(update={"stop": [stop], "include_stop": True}))[0]
    assert kept.text == full.text[: full.text.index(stop)] + stop
