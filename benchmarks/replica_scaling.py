"""Throughput of OpenAIEngine over 1, 2 and 4 replicas of a fixed-latency OpenAI-compatible stub.

Why a stub: it answers after a fixed sleep, so the servers cost no CPU and two cores do not limit the
measurement; what is measured is the client (routing, HTTP) and how well it keeps every replica busy.
The stubs run in a separate process (one asyncio loop serving every port), the engine in this one.

Prints, as JSON lines:
- ``scaling``: requests/s with N replicas and the ratio to one replica (target >= 0.9 * N);
- ``overhead``: the router's own cost per request (a request that costs nothing, no HTTP) and the
  wall time per request beyond the ideal (latency * requests / slots) in the HTTP runs (target <= 1 ms);
- ``straggler``: N replicas with one ``--slow``x slower, in pipeline-sized chunks, with and without
  hedging; ``cost`` is 1 - throughput / throughput with N equal replicas (target <= 0.15). With a
  fixed-latency stub and ``concurrency`` slots per replica, the slow replica's capacity alone makes
  ``capacity_cost`` = 1 - (N - 1 + 1/slow) / N the least any routing can cost. When a chunk is
  one wave (``--chunk`` = replicas x concurrency), every chunk waits for the slow replica's share or
  for its hedges (about 2x the fast latency), so the cost nears ``capacity_cost`` only with chunks
  of several waves.

Run on a quiet machine:  python benchmarks/replica_scaling.py  (about a minute; --quick for a check)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import time

from rlaif.engines.base import Sampling
from rlaif.engines.openai import OpenAIEngine


# -- the stub: a minimal HTTP/1.1 keep-alive server on asyncio ------------------------------------
async def _handle(reader, writer, latency_s: float) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            length = 0
            for line in lines[1:]:
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            body = await reader.readexactly(length) if length else b""
            if method == "GET":
                payload = b'{"data": [{"id": "stub"}]}'
            else:
                await asyncio.sleep(latency_s)
                n = json.loads(body).get("n", 1)
                msg = '{"role": "assistant", "content": "ok"}'
                choices = ",".join(
                    f'{{"index": {i}, "message": {msg}, "finish_reason": "stop"}}' for i in range(n)
                )
                payload = f'{{"choices": [{choices}]}}'.encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(payload)).encode()
                + b"\r\n\r\n"
                + payload
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def _serve(latencies: list[float], ports, ready) -> None:
    async def main() -> None:
        servers = []
        for latency in latencies:
            server = await asyncio.start_server(
                lambda r, w, lat=latency: _handle(r, w, lat), "127.0.0.1", 0, backlog=1024
            )
            servers.append(server)
            ports.append(server.sockets[0].getsockname()[1])
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


class Stubs:
    def __init__(self, latencies: list[float]):
        manager = multiprocessing.Manager()
        self.ports, ready = manager.list(), manager.Event()
        self.proc = multiprocessing.Process(target=_serve, args=(latencies, self.ports, ready), daemon=True)
        self.proc.start()
        ready.wait(30)
        self.urls = [f"http://127.0.0.1:{p}/v1" for p in self.ports]
        self.manager = manager

    def close(self) -> None:
        self.proc.kill()
        self.proc.join()
        self.manager.shutdown()


# -- measurements ---------------------------------------------------------------------------------
def run(urls: list[str], requests: int, chunk: int, concurrency: int, hedge: float | None) -> float:
    """Seconds to serve ``requests`` prompts in generate calls of ``chunk`` prompts."""
    engine = OpenAIEngine(urls, concurrency=concurrency, hedge_factor=hedge)
    prompts = [[{"role": "user", "content": f"p {i}"}] for i in range(requests)]
    settings = [Sampling(max_tokens=8, seed=i) for i in range(requests)]
    engine.generate(prompts[: len(urls) * concurrency], settings[: len(urls) * concurrency])  # connect
    start = time.perf_counter()
    for s in range(0, requests, chunk):
        out = engine.generate(prompts[s : s + chunk], settings[s : s + chunk])
        assert len(out) == len(prompts[s : s + chunk])
    return time.perf_counter() - start


def router_overhead(requests: int) -> float:
    """Seconds of router work per request when a request itself costs nothing."""
    from rlaif.engines.replicas import ReplicaSet
    from rlaif.engines.router import Router

    pool = ReplicaSet([f"http://r{i}/v1" for i in range(4)], capacity=16)

    async def attempt(replica, index):
        await asyncio.sleep(0)
        return index

    async def probe(replica):
        return None

    stats = {"requests": 0, "retries": 0, "hedges": 0}
    router = Router(
        pool, attempt, probe, max_retries=0, backoff_s=0, max_backoff_s=0, hedge_factor=1.0, stats=stats
    )
    start = time.perf_counter()
    out = asyncio.run(router.run(requests))
    assert out == list(range(requests))
    return (time.perf_counter() - start) / requests


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.05, help="stub seconds per request")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight per replica")
    parser.add_argument(
        "--per-replica", type=int, default=640, help="requests per replica in the scaling runs"
    )
    parser.add_argument(
        "--chunk", type=int, default=64, help="prompts per generate call in the straggler runs"
    )
    parser.add_argument("--slow", type=float, default=3.0, help="the straggler's latency factor")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script runs")
    args = parser.parse_args()
    if args.quick:
        args.per_replica, args.latency = 64, 0.02
    lat, conc = args.latency, args.concurrency

    base = None
    for n in (1, 2, 4):
        stubs = Stubs([lat] * n)
        try:
            requests = args.per_replica * n
            took = run(stubs.urls, requests, requests, conc, 1.0)
        finally:
            stubs.close()
        rate = requests / took
        base = base or rate
        ideal = lat * requests / (n * conc)
        extra_ms = 1000 * (took - ideal) / requests
        row = {
            "replicas": n,
            "requests": requests,
            "req_per_s": round(rate, 1),
            "ratio": round(rate / base, 3),
        }
        print(
            json.dumps(
                {"scaling": {**row, "target": 0.9 * n, "ms_beyond_ideal_per_request": round(extra_ms, 3)}}
            )
        )

    print(
        json.dumps(
            {"overhead": {"router_ms_per_request": round(1000 * router_overhead(20000), 4), "target_ms": 1}}
        )
    )

    n, requests = 4, args.per_replica * 4
    rows = {}
    for name, latencies, hedge in (
        ("equal", [lat] * n, 1.0),
        ("one_slow_hedged", [lat] * (n - 1) + [lat * args.slow], 1.0),
        ("one_slow_no_hedge", [lat] * (n - 1) + [lat * args.slow], None),
    ):
        stubs = Stubs(latencies)
        try:
            rows[name] = requests / run(stubs.urls, requests, args.chunk, conc, hedge)
        finally:
            stubs.close()
    capacity_cost = 1 - (n - 1 + 1 / args.slow) / n
    for name in ("one_slow_hedged", "one_slow_no_hedge"):
        cost = 1 - rows[name] / rows["equal"]
        print(
            json.dumps(
                {
                    "straggler": {
                        "run": name,
                        "chunk": args.chunk,
                        "req_per_s": round(rows[name], 1),
                        "equal_req_per_s": round(rows["equal"], 1),
                        "cost": round(cost, 3),
                        "capacity_cost": round(capacity_cost, 3),
                        "target": 0.15,
                    }
                }
            )
        )


if __name__ == "__main__":
    main()
