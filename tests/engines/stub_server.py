"""A tiny OpenAI-compatible stub server for routing tests: fixed latency, can be killed mid-batch.

Each answer echoes the prompt and the request's seed, so a test can check that a retried or hedged
request carried the same seed to whichever replica served it.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JsonHandler(BaseHTTPRequestHandler):
    """What every stub's request handler shares: no access log on stderr, and JSON answers."""

    def log_message(self, *args):
        pass

    def _send(self, code: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class StubServer:
    """``latency_s`` per completion; :meth:`kill` refuses new connections and drops in-flight ones
    without an answer (like a SIGKILLed ``vllm serve``); ``kill_after`` does so after that many answers."""

    def __init__(self, latency_s: float = 0.0, kill_after: int | None = None, status: int = 200):
        self.latency_s = latency_s
        self.kill_after = kill_after
        self.status = status
        self.served: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.dead = False
        outer = self

        class Handler(JsonHandler):
            def do_GET(self):
                if self.path == "/health":
                    return self._send(200, {})
                self._send(200, {"data": [{"id": "stub"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                time.sleep(outer.latency_s)
                if outer.dead:
                    return  # connection closed without an answer
                if outer.status != 200:
                    return self._send(outer.status, {"error": "stub status"})
                text = body["messages"][-1]["content"]
                with outer.lock:
                    outer.served[text] += 1
                    if outer.kill_after is not None and sum(outer.served.values()) >= outer.kill_after:
                        threading.Thread(target=outer.kill).start()
                message = {"role": "assistant", "content": f"{text} seed={body.get('seed')}"}
                choices = [
                    {"index": i, "message": message, "finish_reason": "stop"} for i in range(body["n"])
                ]
                self._send(200, {"choices": choices})

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # the default backlog of 5 refuses connections under load

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def kill(self) -> None:
        if self.dead:
            return
        self.dead = True
        self.httpd.shutdown()
        self.httpd.server_close()

    def close(self) -> None:
        self.kill()
