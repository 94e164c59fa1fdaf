"""Engine for any OpenAI-compatible server (``vllm serve``, a hosted endpoint, ...).

Why: the judge is often a bigger model served elsewhere, or the policy is served by a long-running
``vllm serve`` shared by several jobs.

Several servers of the same model (``vllm serve`` replicas, e.g. started by
:mod:`rlaif.engines.ray_engine`) form one engine: ``base_url`` may be a list. Routing, retries and
straggler hedging are in :mod:`rlaif.engines.router`, the replicas' health in
:mod:`rlaif.engines.replicas` (which says why this is not ``vllm-router``).

Guarantees:
- one HTTP request per prompt (``n`` samples each), at most ``concurrency`` in flight per replica,
  each sent to the replica with the fewest outstanding requests;
- every replica answers a health check before use (one that does not is dropped with a warning);
- timeouts, connection errors, HTTP 408/409/429 and 5xx are retried - on another replica when one is
  alive, else with exponential backoff and jitter - up to ``max_retries`` times per prompt; 4xx errors
  other than those are not retried (the request itself is wrong);
- the request body, seed included, is built once per prompt, so a retry or a straggler hedge on
  another replica asks for exactly the same thing;
- results are returned in input order, exactly one result per prompt: a retried request whose first
  attempt was in fact served is still counted once, because results are stored by prompt index;
- if any prompt still fails after its retries, or no replica is left, :class:`EngineError` names the
  prompt index (or every replica) and the cause, and no partial batch is returned (callers that write
  incrementally call with smaller batches).

Non-guarantees: a server may see a prompt more than once (a retry after a timeout whose first attempt
was processed, or a hedge); token ids come back only when the server returns them (vLLM does with
``return_token_ids``); sampling seeds are honoured only if the server supports ``seed``, and give the
same text on two replicas only if they run the same model with the same numerics.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence
from typing import Any

from rlaif.engines.base import PromptInput, Sampling, per_prompt
from rlaif.engines.replicas import Replica, ReplicaSet
from rlaif.engines.router import Retryable, Router
from rlaif.errors import EngineError
from rlaif.records import Completion, TokenLogprob, TopLogprob, as_conversation

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class OpenAIEngine:
    """Talks to ``base_url`` (e.g. ``http://127.0.0.1:8000/v1``) or a list of such replicas.

    ``model`` defaults to the first model the first healthy server lists. Conversations go to
    ``/chat/completions``; plain strings to ``/completions``. ``hedge_factor`` (None: off) is how many
    times the batch's median latency a request may run, once nothing is left to start, before it is
    also sent to an idle replica.
    """

    def __init__(
        self,
        base_url: str | Sequence[str],
        model: str | None = None,
        *,
        api_key: str | None = None,
        concurrency: int = 16,
        timeout_s: float = 120.0,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 20.0,
        guided_json: bool = True,
        vllm_extensions: bool = True,
        check_connection: bool = True,
        hedge_factor: float | None = 1.0,
        health_tries: int = 3,
        health_interval_s: float = 1.0,
        health_timeout_s: float = 5.0,
    ):
        if concurrency < 1:
            raise EngineError(f"concurrency must be >= 1, got {concurrency}")
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        self.pool = ReplicaSet(urls, concurrency, health_tries, health_interval_s)
        self.base_url = self.pool.replicas[0].url
        self.api_key = api_key
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.hedge_factor = hedge_factor
        self.health_timeout_s = health_timeout_s
        self._guided_json = guided_json
        self._ssl = None
        self.vllm_extensions = vllm_extensions
        self.stats: dict[str, int] = {"requests": 0, "retries": 0, "hedges": 0}
        self.model_name = model or ""
        if check_connection or model is None:
            self._check_replicas(model)

    @property
    def urls(self) -> list[str]:
        """The replicas still in use."""
        return [r.url for r in self.pool.alive()]

    def served_counts(self) -> dict[str, int]:
        """Requests each replica answered (dropped ones included), for logs and tests."""
        return {r.url: r.served for r in self.pool.replicas}

    def _check_replicas(self, model: str | None) -> None:
        if len(self.pool.replicas) > 1:
            self.pool.check_all_sync(self._headers(), self.health_timeout_s)
        for replica in self.pool.alive():
            served = self._served_models(replica.url)
            if not self.model_name:
                self.model_name = served[0]
            elif self.model_name not in served:
                raise EngineError(
                    f"server at {replica.url} does not serve model '{self.model_name}' "
                    f"(it serves: {', '.join(served)})"
                )

    @property
    def supports_guided_json(self) -> bool:
        return self._guided_json

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _served_models(self, url: str) -> list[str]:
        import httpx

        try:
            resp = httpx.get(f"{url}/models", headers=self._headers(), timeout=self.timeout_s)
            resp.raise_for_status()
            models = resp.json().get("data", [])
        except (httpx.HTTPError, ValueError) as exc:
            raise EngineError(f"cannot reach OpenAI-compatible server at {url}: {exc}") from None
        if not models:
            raise EngineError(f"server at {url} lists no models")
        return [m["id"] for m in models]

    # -- request bodies ---------------------------------------------------------------------------
    def _body(self, prompt: PromptInput, s: Sampling) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "model": self.model_name,
            "n": s.n,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
        }
        if s.stop:
            body["stop"] = list(s.stop)
            if s.include_stop and self.vllm_extensions:  # a vLLM server's own sampling parameter
                body["include_stop_str_in_output"] = True
        if s.seed is not None:
            body["seed"] = s.seed
        if self.vllm_extensions:
            body["return_token_ids"] = True
        if isinstance(prompt, str):
            body["prompt"] = prompt
            if s.logprobs is not None:
                body["logprobs"] = max(s.logprobs, 1)
            path = "/completions"
        else:
            body["messages"] = [m.model_dump() for m in as_conversation(prompt)]
            if s.logprobs is not None:
                body["logprobs"] = True
                body["top_logprobs"] = s.logprobs
            path = "/chat/completions"
        if s.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "judgment", "schema": s.json_schema},
            }
        # vLLM's OpenAI server extension (other servers reject or ignore the field).
        if s.choice is not None:
            body["structured_outputs"] = {"choice": list(s.choice)}
        if s.regex is not None:
            body["structured_outputs"] = {"regex": s.regex}
        return path, body

    @staticmethod
    def _parse_choice(choice: dict[str, Any], chat: bool) -> Completion:
        text = choice["message"]["content"] if chat else choice["text"]
        logprobs = None
        lp = choice.get("logprobs")
        if lp:
            logprobs = []
            if chat:
                for item in lp.get("content") or []:
                    top = [
                        TopLogprob(token=t["token"], logprob=t["logprob"])
                        for t in item.get("top_logprobs") or []
                    ]
                    logprobs.append(TokenLogprob(token=item["token"], logprob=item["logprob"], top=top))
            else:
                tops = lp.get("top_logprobs") or []
                for i, (tok, val) in enumerate(zip(lp.get("tokens") or [], lp.get("token_logprobs") or [])):
                    alts = tops[i] if i < len(tops) and tops[i] else {}
                    top = sorted(
                        (TopLogprob(token=t, logprob=v) for t, v in alts.items()), key=lambda t: -t.logprob
                    )
                    logprobs.append(TokenLogprob(token=tok, logprob=val, top=top))
        token_ids = choice.get("token_ids")
        return Completion(
            index=choice.get("index", 0),
            text=text or "",
            token_ids=list(token_ids) if token_ids is not None else None,
            finish_reason=choice.get("finish_reason"),
            logprobs=logprobs,
        )

    def _ssl_context(self):
        """Built once per engine: loading the CA bundle takes ~0.1 s, too much for every chunk."""
        if self._ssl is None:
            import httpx

            self._ssl = httpx.create_ssl_context()
        return self._ssl

    # -- async core -------------------------------------------------------------------------------
    async def _attempt(self, client, replica: Replica, path: str, body: dict, index: int, n: int):
        import httpx

        try:
            resp = await client.post(replica.url + path, json=body, headers=self._headers())
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise Retryable(f"{type(exc).__name__}: {exc}") from None
        if resp.status_code in RETRY_STATUS:
            raise Retryable(f"HTTP {resp.status_code}: {resp.text[:200]}")
        if resp.status_code >= 400:
            raise EngineError(
                f"server {replica.url} rejected prompt {index} with HTTP {resp.status_code}: {resp.text[:300]}"
            )
        try:
            choices = sorted(resp.json()["choices"], key=lambda c: c.get("index", 0))
            comps = [self._parse_choice(c, chat=path.startswith("/chat")) for c in choices]
        except (ValueError, KeyError, TypeError) as exc:
            raise Retryable(f"malformed response ({exc})") from None
        if len(comps) != n:
            raise Retryable(f"expected {n} choices, got {len(comps)}")
        return [c.model_copy(update={"index": i}) for i, c in enumerate(comps)]

    async def agenerate(
        self, prompts: Sequence[PromptInput], sampling: Sampling | Sequence[Sampling]
    ) -> list[list[Completion]]:
        import httpx

        settings = per_prompt(sampling, len(prompts))
        requests = [self._body(p, s) for p, s in zip(prompts, settings, strict=True)]
        # one client per replica: httpcore's pool scans every connection per request, so one shared
        # pool costs O(replicas * concurrency) per request (it was the bottleneck at 4 replicas)
        limits = httpx.Limits(
            max_connections=self.concurrency + 1, max_keepalive_connections=self.concurrency + 1
        )
        async with contextlib.AsyncExitStack() as stack:
            clients = {
                r: await stack.enter_async_context(
                    httpx.AsyncClient(timeout=self.timeout_s, limits=limits, verify=self._ssl_context())
                )
                for r in self.pool.alive()
            }

            def attempt(replica: Replica, index: int):
                path, body = requests[index]
                return self._attempt(clients[replica], replica, path, body, index, settings[index].n)

            def probe(replica: Replica):
                return self.pool.probe(clients[replica], replica, self._headers(), self.health_timeout_s)

            router = Router(
                self.pool,
                attempt,
                probe,
                max_retries=self.max_retries,
                backoff_s=self.backoff_s,
                max_backoff_s=self.max_backoff_s,
                hedge_factor=self.hedge_factor,
                stats=self.stats,
            )
            return await router.run(len(prompts))

    def generate(
        self,
        prompts: Sequence[PromptInput],
        sampling: Sampling | Sequence[Sampling],
        adapter: str | None = None,
    ) -> list[list[Completion]]:
        """Blocking wrapper; works whether or not the caller already runs an event loop."""
        if adapter is not None:
            raise EngineError(
                "OpenAIEngine serves adapters by model name: start the server with --lora-modules and "
                "pass that name as model="
            )
        if not prompts:
            return []
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.agenerate(prompts, sampling))
        box: dict[str, Any] = {}

        def runner() -> None:
            try:
                box["out"] = asyncio.run(self.agenerate(prompts, sampling))
            except BaseException as exc:  # re-raised in the caller's thread
                box["err"] = exc

        thread = threading.Thread(target=runner)
        thread.start()
        thread.join()
        if "err" in box:
            raise box["err"]
        return box["out"]

    def close(self) -> None:
        pass
