"""Stop strings for the final round's HF sampling: a completion ends at the first stop string, as our
vLLM sampling does with ``include_stop`` (the code candidates stop at the end of their code block).
TRL's GRPO / RLOO get :class:`StopStringsMixin`; our PPO uses :func:`stop_criteria` and
:func:`stop_length` directly (:mod:`rlaif.train.ppo_rollout`).

Why a subclass of TRL's trainers: TRL 1.16 calls ``generate(**inputs, generation_config=...)`` with
neither ``tokenizer=`` (which transformers needs to turn ``stop_strings`` into its stop-string
criterion) nor ``stopping_criteria=``, so the mixin adds the criterion, built once, to that call. And
TRL ends a completion only at its first EOS, so a row that stopped at a stop string would keep the
pad tokens ``generate`` appends after it - trained on and counted, since a pad is not an EOS for most
chat models (Qwen pads with ``<|endoftext|>``, ends turns with ``<|im_end|>``) - and would count as
clipped in TRL's metrics. The mixin overrides the two smallest methods (sampling one batch, logging
its lengths) and leaves the rest to TRL.

Guarantees (TRL's transformers ``generate`` path):
- a row stops sampling at the token that completes a stop string (transformers' StopStringCriteria);
- its completion ids end with that token: nothing after it is trained on, masked in, counted in the
  lengths or passed to the rewards;
- the stop string stays in the completion text the rewards get (like ``include_stop=True``);
- ``completions/stopped_ratio`` is the fraction that ended at a stop string; ``clipped_ratio`` and
  the ``*_terminated_length`` metrics count those as terminated, not clipped.

Non-guarantees: the text is not cut inside a token, so the completion may carry the rest of the
token that completed the stop string (vLLM cuts the text exactly); a stop string spanning the end of
the prompt and the first sampled token also stops (transformers looks at the whole sequence). TRL's
vLLM and continuous-batching modes and ``mask_truncated_completions`` are refused with stop strings
(by the config: :data:`rlaif.train.configs.rl.STOP_STRINGS_REFUSE`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache, lru_cache, partial

Decode = Callable[[Sequence[int]], str]


def _holds(ids: Sequence[int], n: int, decode: Decode, stops: Sequence[str]) -> bool:
    text = decode(ids[:n])
    return any(s in text for s in stops)


def stop_length(ids: Sequence[int], decode: Decode, stops: Sequence[str]) -> int | None:
    """Length of the shortest prefix of ``ids`` whose text holds a stop string (None: none does).

    Binary search: a longer prefix's text extends a shorter one's, so once a stop string is in, it
    stays in; the shortest such prefix ends with the token that completed the stop string, which is
    where generation stopped."""
    if not ids or not _holds(ids, len(ids), decode, stops):
        return None
    lo, hi = 1, len(ids)
    while lo < hi:
        mid = (lo + hi) // 2
        if _holds(ids, mid, decode, stops):
            hi = mid
        else:
            lo = mid + 1
    return lo


def cut_at_stop(rows: Sequence[Sequence[int]], decode: Decode, stops: Sequence[str]) -> list[list[int]]:
    """Each row cut after the token that completes its first stop string (rows without one unchanged)."""
    out = []
    for row in rows:
        n = stop_length(row, decode, stops)
        out.append(list(row if n is None else row[:n]))
    return out


def ends_at_stop(ids: Sequence[int], decode: Decode, stops: Sequence[str]) -> bool:
    """Whether the row's last token completed its first stop string (a row cut by :func:`cut_at_stop`)."""
    n = len(ids)
    return n > 0 and _holds(ids, n, decode, stops) and not _holds(ids, n - 1, decode, stops)


@lru_cache(maxsize=4)
def stop_criteria(tokenizer, stops: tuple[str, ...]):
    """transformers' stop-string criterion for ``tokenizer``, built once: building it walks the whole
    vocabulary (about 1.5 s for Qwen's 152k tokens on a loaded 2-core machine), which ``generate``
    would redo on every call given ``stop_strings`` and ``tokenizer=``."""
    from transformers import StoppingCriteriaList, StopStringCriteria

    return StoppingCriteriaList([StopStringCriteria(tokenizer=tokenizer, stop_strings=list(stops))])


@contextmanager
def generate_with(model, **kwargs) -> Iterator[None]:
    """``model.generate`` called with ``kwargs`` too while inside (what TRL's call does not pass); the
    model's own ``generate`` is back afterwards."""
    own = model.__dict__.get("generate")
    model.generate = partial(model.generate, **kwargs)
    try:
        yield
    finally:
        if own is None:
            del model.generate
        else:
            model.generate = own


class StopStringsMixin:
    """Put before a TRL GRPOTrainer / RLOOTrainer; ``stop_strings=`` is the one new argument."""

    def __init__(self, *args, stop_strings: Sequence[str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.stop_strings = tuple(stop_strings or ())

    def _raw_text(self, ids: Sequence[int]) -> str:
        return self._tokenizer.decode(
            list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False
        )

    def _generate_single_turn(self, *args, **kwargs):
        if not self.stop_strings:
            return super()._generate_single_turn(*args, **kwargs)
        model = self.accelerator.unwrap_model(self.model_wrapped)  # what TRL calls generate on
        with generate_with(model, stopping_criteria=stop_criteria(self._tokenizer, self.stop_strings)):
            out = super()._generate_single_turn(*args, **kwargs)
        # GRPO returns (ids, logprobs) - logprobs None on this path -, RLOO the ids alone
        ids = out[0] if isinstance(out, tuple) else out
        cut = cut_at_stop(ids, self._raw_text, self.stop_strings)
        return (cut, *out[1:]) if isinstance(out, tuple) else cut

    def _generate(self, prompts):
        out = super()._generate(prompts)
        if self.stop_strings:
            self._log_stops(out[1])
        return out

    def _log_stops(self, completion_ids: list[list[int]]) -> None:
        """Add ``completions/stopped_ratio``; redo TRL's clipped and terminated figures, which know
        only EOS, so that a completion ended by a stop string counts as terminated."""
        import torch

        device, mode = self.accelerator.device, "train" if self.model.training else "eval"
        ends = {*self.eos_token_ids, self._tokenizer.pad_token_id}
        stopped = [ends_at_stop(ids, self._raw_text, self.stop_strings) for ids in completion_ids]
        ended = [s or ids[-1] in ends for s, ids in zip(stopped, completion_ids, strict=True)]
        gather = self.accelerator.gather
        stopped_t = gather(torch.tensor(stopped, device=device))
        ended_t = gather(torch.tensor(ended, device=device))
        lengths = gather(torch.tensor([len(ids) for ids in completion_ids], device=device)).float()
        metrics = self._metrics[mode]
        metrics["completions/stopped_ratio"].append(stopped_t.float().mean().item())
        metrics["completions/clipped_ratio"][-1] = (~ended_t).float().mean().item()
        done = lengths[ended_t] if bool(ended_t.any()) else torch.zeros(1, device=device)
        metrics["completions/mean_terminated_length"][-1] = done.mean().item()
        metrics["completions/min_terminated_length"][-1] = done.min().item()
        metrics["completions/max_terminated_length"][-1] = done.max().item()


@cache
def stopping_trainer(base: type) -> type:
    """``base`` (a TRL trainer class) with :class:`StopStringsMixin`; one class per base."""
    return type(base.__name__, (StopStringsMixin, base), {"__doc__": base.__doc__})
