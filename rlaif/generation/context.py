"""Context screening: requests longer than the model's context are left out and reported.

Why: a prompt longer than the model's context makes vLLM reject the whole batch. Callers therefore
count prompt tokens first (where the engine can) and record an over-long request with its reason,
instead of failing every other request or silently truncating the text.

Guarantees: :func:`generate_checked` sends one ``generate`` call holding every request that fits, in
input order. Non-guarantee: engines that cannot count tokens (test doubles, remote servers) get every
request sent as is; a server's own length error then surfaces as an :class:`EngineError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rlaif.engines.base import Sampling
from rlaif.records import Completion, as_conversation


def token_counter(engine: Any) -> tuple[Callable[[list], list[int]] | None, int | None]:
    """A function counting prompt tokens, and the context length, where the engine reveals them.

    Prefers ``engine.count_prompt_tokens(prompts)`` / ``engine.max_model_len``; otherwise uses the
    tokenizer and model config of an in-process vLLM engine.
    """
    counter = getattr(engine, "count_prompt_tokens", None)
    max_len = getattr(engine, "max_model_len", None)
    if counter is not None and max_len is not None:
        return counter, int(max_len)
    tokenizer = getattr(engine, "tokenizer", None)
    llm = getattr(engine, "llm", None)
    config = getattr(llm, "model_config", None)
    if tokenizer is None or config is None or getattr(config, "max_model_len", None) is None:
        return None, None

    def count(prompts: list) -> list[int]:
        out = []
        for p in prompts:
            if isinstance(p, str):
                out.append(len(tokenizer.encode(p)))
            else:
                conv = [m.model_dump() for m in as_conversation(p)]
                text = tokenizer.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
                out.append(len(tokenizer.encode(text, add_special_tokens=False)))
        return out

    return count, int(config.max_model_len)


def context_overflow(engine: Any, requests: Sequence[Any]) -> dict[int, str]:
    """Requests longer than the model's context (where the engine can count tokens): index -> detail.

    Why: vLLM rejects the whole batch when one prompt is too long; such a prompt is left out and
    reported instead (retrying cannot help). Engines that cannot count tokens get every request as is.
    """
    counter, max_len = token_counter(engine)
    if counter is None or max_len is None or not requests:
        return {}
    return {
        i: f"prompt is {n} tokens; the model's context is {max_len}"
        for i, n in enumerate(counter(list(requests)))
        if n >= max_len
    }


def generate_checked(
    engine: Any, payloads: list, sampling: Sampling, adapter: str | None
) -> list[list[Completion] | str]:
    """One ``engine.generate`` call for every request that fits the context; a reason for the rest."""
    too_long = context_overflow(engine, payloads)
    results: list[list[Completion] | str] = [
        f"{too_long[i]} (request not sent)" if i in too_long else [] for i in range(len(payloads))
    ]
    send = [i for i in range(len(payloads)) if i not in too_long]
    if send:
        outputs = engine.generate([payloads[i] for i in send], sampling, adapter=adapter)
        if len(outputs) != len(send):
            raise RuntimeError(f"engine returned {len(outputs)} results for {len(send)} prompts")
        for i, out in zip(send, outputs, strict=True):
            results[i] = out
    return results
