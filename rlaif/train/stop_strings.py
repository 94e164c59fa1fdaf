"""Stop strings for the final round's HF sampling: a completion ends at the first stop string, as our
vLLM sampling does with ``include_stop`` (the code candidates stop at the end of their code block).
TRL's GRPO / RLOO get :class:`StopStringsMixin`; our PPO uses :func:`stop_criteria`,
:func:`cut_at_stop` and :func:`raw_decoder` directly (:mod:`rlaif.train.ppo`).

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


def cut_at_stop(
    rows: Sequence[Sequence[int]], decode: Decode, stops: Sequence[str]
) -> tuple[list[list[int]], list[bool]]:
    """Each row cut after the token that completes its first stop string, and whether it was; rows
    without one come back whole. The flags are what the callers log and reward with, so nobody
    decodes a cut row again to learn whether it stopped. With no ``stops`` nothing is decoded."""
    if not stops:
        return [list(row) for row in rows], [False] * len(rows)
    lengths = [stop_length(row, decode, stops) for row in rows]
    cut = [list(row if n is None else row[:n]) for row, n in zip(rows, lengths, strict=True)]
    return cut, [n is not None for n in lengths]


def raw_decoder(tokenizer) -> Decode:
    """``tokenizer``'s decode as the stop check must see the text: special tokens kept and no
    clean-up of spaces, so the text is what was sampled, as vLLM matches stop strings on it."""

    def decode(ids: Sequence[int]) -> str:
        return tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)

    return decode


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
        self._stopped: list[bool] = []  # the last cut's flags, for _log_stops

    def _generate_single_turn(self, *args, **kwargs):
        if not self.stop_strings:
            return super()._generate_single_turn(*args, **kwargs)
        model = self.accelerator.unwrap_model(self.model_wrapped)  # what TRL calls generate on
        with generate_with(model, stopping_criteria=stop_criteria(self._tokenizer, self.stop_strings)):
            out = super()._generate_single_turn(*args, **kwargs)
        # GRPO returns (ids, logprobs) - logprobs None on this path -, RLOO the ids alone
        ids = out[0] if isinstance(out, tuple) else out
        cut, self._stopped = cut_at_stop(ids, raw_decoder(self._tokenizer), self.stop_strings)
        return (cut, *out[1:]) if isinstance(out, tuple) else cut

    def _generate(self, prompts):
        out = super()._generate(prompts)
        if self.stop_strings:
            self._log_stops(out[1], self._stopped)
        return out

    def _log_stops(self, completion_ids: list[list[int]], stopped: list[bool]) -> None:
        """Add ``completions/stopped_ratio``; redo TRL's clipped and terminated figures, which know
        only EOS, so that a completion ended by a stop string counts as terminated. ``stopped`` are
        the flags of the batch's one cut (rlaif gives TRL no tools, whose loop would sample again)."""
        import torch

        device, mode = self.accelerator.device, "train" if self.model.training else "eval"
        ends = {*self.eos_token_ids, self._tokenizer.pad_token_id}
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
