"""Engine for any OpenAI-compatible server (``vllm serve``, a hosted endpoint, ...).

Why: the judge is often a bigger model served elsewhere, or the policy is served by a long-running
``vllm serve`` shared by several jobs.

Guarantees:
- one HTTP request per prompt (``n`` samples each), at most ``concurrency`` in flight;
- timeouts, connection errors, HTTP 429 and 5xx are retried with exponential backoff and jitter up to
  ``max_retries`` times; 4xx errors other than 429 are not retried (the request itself is wrong);
- results are returned in input order, exactly one result per prompt: a retried request whose first
  attempt was in fact served is still counted once, because results are stored by prompt index;
- if any prompt still fails after its retries, :class:`EngineError` names the prompt index and cause,
  and no partial batch is returned (callers that write incrementally call with smaller batches).

Non-guarantees: the server may see a prompt more than once (a retry after a timeout whose first attempt
was processed); token ids come back only when the server returns them (vLLM does with
``return_token_ids``); sampling seeds are honoured only if the server supports ``seed``.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Sequence
from typing import Any

from rlaif.engines.base import PromptInput, Sampling
from rlaif.errors import EngineError
from rlaif.records import Completion, TokenLogprob, TopLogprob, as_conversation

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class _Retryable(Exception):
    pass


class OpenAIEngine:
    """Talks to ``base_url`` (e.g. ``http://127.0.0.1:8000/v1``).

    ``model`` defaults to the first model the server lists. Conversations go to ``/chat/completions``;
    plain strings to ``/completions``.
    """

    def __init__(
        self,
        base_url: str,
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
    ):
        if concurrency < 1:
            raise EngineError(f"concurrency must be >= 1, got {concurrency}")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._guided_json = guided_json
        self.vllm_extensions = vllm_extensions
        self.stats = {"requests": 0, "retries": 0}
        self.model_name = model or ""
        if check_connection or model is None:
            served = self._served_models()
            if model is None:
                self.model_name = served[0]
            elif model not in served:
                raise EngineError(
                    f"server at {self.base_url} does not serve model '{model}' (it serves: {', '.join(served)})"
                )

    @property
    def supports_guided_json(self) -> bool:
        return self._guided_json

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _served_models(self) -> list[str]:
        import httpx

        try:
            resp = httpx.get(f"{self.base_url}/models", headers=self._headers(), timeout=self.timeout_s)
            resp.raise_for_status()
            models = resp.json().get("data", [])
        except (httpx.HTTPError, ValueError) as exc:
            raise EngineError(f"cannot reach OpenAI-compatible server at {self.base_url}: {exc}") from None
        if not models:
            raise EngineError(f"server at {self.base_url} lists no models")
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

    # -- async core -------------------------------------------------------------------------------
    async def _one(self, client, sem: asyncio.Semaphore, index: int, prompt: PromptInput, s: Sampling):
        import httpx

        path, body = self._body(prompt, s)
        last_error = "unknown error"
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.stats["retries"] += 1
                delay = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
                await asyncio.sleep(delay * (0.5 + random.random() / 2))
            async with sem:
                self.stats["requests"] += 1
                try:
                    resp = await client.post(self.base_url + path, json=body, headers=self._headers())
                except (httpx.TimeoutException, httpx.TransportError) as exc:
                    last_error = f"{type(exc).__name__}: {exc}"
                    continue
            if resp.status_code in RETRY_STATUS:
                last_error = f"HTTP {resp.status_code}: {resp.text[:200]}"
                continue
            if resp.status_code >= 400:
                raise EngineError(
                    f"server rejected prompt {index} with HTTP {resp.status_code}: {resp.text[:300]}"
                )
            try:
                data = resp.json()
                choices = sorted(data["choices"], key=lambda c: c.get("index", 0))
                comps = [self._parse_choice(c, chat=path.startswith("/chat")) for c in choices]
            except (ValueError, KeyError, TypeError) as exc:
                last_error = f"malformed response ({exc})"
                continue
            if len(comps) != s.n:
                last_error = f"expected {s.n} choices, got {len(comps)}"
                continue
            return index, [c.model_copy(update={"index": i}) for i, c in enumerate(comps)]
        raise EngineError(
            f"prompt {index} failed after {self.max_retries + 1} attempts against {self.base_url}: {last_error}"
        )

    async def agenerate(
        self, prompts: Sequence[PromptInput], sampling: Sampling | Sequence[Sampling]
    ) -> list[list[Completion]]:
        import httpx

        settings = [sampling] * len(prompts) if isinstance(sampling, Sampling) else list(sampling)
        if len(settings) != len(prompts):
            raise EngineError(f"got {len(settings)} sampling settings for {len(prompts)} prompts")
        sem = asyncio.Semaphore(self.concurrency)
        results: list[list[Completion] | None] = [None] * len(prompts)
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        async with httpx.AsyncClient(timeout=self.timeout_s, limits=limits) as client:
            tasks = [
                asyncio.create_task(self._one(client, sem, i, p, s))
                for i, (p, s) in enumerate(zip(prompts, settings, strict=True))
            ]
            try:
                for fut in asyncio.as_completed(tasks):
                    index, comps = await fut
                    results[index] = comps
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:  # pragma: no cover - every task either returned or raised
            raise EngineError(f"no result for prompts {missing[:10]}")
        return results  # type: ignore[return-value]

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
