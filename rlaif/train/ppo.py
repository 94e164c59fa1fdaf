"""PPO with a critic for language models - ours, since TRL removed its PPOTrainer.

One iteration: sample responses for a batch of prompts (HF ``generate`` or a vLLM engine serving the
current LoRA adapter), cut them at the first EOS, score them (a reward model or any reward callable),
then run ``ppo_epochs`` passes of clipped-ratio policy updates and clipped value updates over the batch.
The arithmetic lives in :mod:`rlaif.train.ppo_math`, the set-up (models, optimisers, reward, engine)
in :mod:`rlaif.train.ppo_setup`, sampling and scoring in :mod:`rlaif.train.ppo_rollout`, the update
in :mod:`rlaif.train.ppo_update`, checkpoints in :mod:`rlaif.train.ppo_checkpoint` and the stage's
outputs in :mod:`rlaif.train.ppo_save`; this module runs the iteration as named phases: rollout,
score, estimate (old log-probs, values, KL-penalised rewards, advantages), optimise, metrics.

Roles: actor (LoRA or full); critic = a value head on every token (:mod:`rlaif.train.critic`),
initialised from the reward model when there is one; reference = the starting policy, frozen - with
LoRA it is the same weights with the adapter disabled (no second copy); with full fine-tuning a frozen
copy. A starting adapter is merged into the base first (written to ``<output_dir>/base``), so the
reference is exactly the starting policy.

Precision (:mod:`rlaif.train.precision`): actor, critic and reference hold fp32 weights; ``bf16``
(``auto`` on a GPU) runs every forward - sampling, reference, critic, update - under one autocast and
takes the old log-probs from a forward pass like the reference's, so the KL is exactly 0 while the
actor equals the reference.

Guarantees: dropout is off in every model; log-probs are of ``softmax(logits / temperature)`` - the
distribution the tokens were sampled from (no top-k/top-p filtering; with HF rollouts the rollout's
log-probs are recorded while sampling, engine rollouts are re-scored by the actor in HF); tokens
after the first EOS carry no reward and no gradient; a missing EOS is penalised; a reward of ``None``
removes that sample from the update (counted as ``reward_none``); ``metrics.jsonl`` gets one line per
iteration: score, KL, clip fraction, value loss, explained variance, response length, EOS rate, ...

Data parallelism (``accelerate launch``, DDP): the prompt set is sharded, ``batch_size`` and
``minibatch_size`` are per process, and an iteration equals one process holding the global batch:
gradients are all-reduced by DDP with each process's loss weighted by its share of the minibatch's
response tokens (a token mean over the global minibatch), advantages are whitened with the global mean
and std, the reward moments see every process's scores, and the KL controller is fed the global mean
KL and the global batch size (tests/train/test_ppo_ddp.py checks the weights against one process).

Non-guarantees: engine rollouts run in a single process (the engine is not shared across ranks);
metrics are averaged over ranks; sampling uses a different seed per rank, so rollouts (and hence
weights) match one process only when the rollouts do.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from rlaif.engines.base import Engine
from rlaif.records import PromptRecord
from rlaif.train import ppo_batch, ppo_checkpoint
from rlaif.train import ppo_math as pm
from rlaif.train.common import MetricsWriter, StageResult, kill_if_fault_step, tensorboard_dir
from rlaif.train.configs import PPOConfig
from rlaif.train.models import check_model_dir, load_tokenizer, merged_starting_base
from rlaif.train.ppo_batch import Estimates, Rollout, Scores, iteration_metrics, process_mean
from rlaif.train.ppo_rollout import (
    cut_at_eos,
    engine_generate,
    forward_inputs,
    hf_generate,
    left_pad,
    score_rollout,
)
from rlaif.train.ppo_save import checkpoint_key, save_stage
from rlaif.train.ppo_setup import (
    build_models,
    configured_reward,
    eos_token_ids,
    kl_controller,
    read_ptx_texts,
    rollout_engine,
    sharded_prompt_rows,
)
from rlaif.train.ppo_update import all_reduce, optimise
from rlaif.train.precision import fresh_accelerator
from rlaif.train.rewards import RewardFn
from rlaif.train.stop_strings import cut_at_stop, raw_decoder


class PPOTrainer:
    """Build with a config (and optionally prompts, a reward callable, an engine); call :meth:`train`."""

    def __init__(
        self,
        cfg: PPOConfig,
        *,
        prompts: list[PromptRecord] | None = None,
        reward_fn: RewardFn | None = None,
        engine: Engine | None = None,
        engine_factory: Callable[[Path], Engine] | None = None,
    ):
        from accelerate.utils import set_seed

        self.cfg = cfg
        # cpu=True without CUDA, as the TRL stages do (train/common.py): otherwise accelerate sees no
        # device, ignores the launcher's world and every `accelerate launch` process trains alone
        self.accelerator = acc = fresh_accelerator(cfg.precision, cpu=not torch.cuda.is_available())
        # under autocast the KV-cached sampling logits differ from a full forward by bf16 rounding:
        # the old log-probs are then recomputed exactly as the reference's and the update's
        self.mixed = acc.mixed_precision != "no"
        set_seed(cfg.seed + acc.process_index)
        self.out = Path(cfg.output_dir)
        check_model_dir(cfg.policy.path, "policy.path")
        self.rows = sharded_prompt_rows(cfg, prompts, acc.process_index, acc.num_processes)
        self.reward_fn = configured_reward(cfg, reward_fn, str(acc.device))
        self.ptx_texts = read_ptx_texts(cfg.ptx_data) if cfg.ptx_coef > 0 and cfg.ptx_data else None

        self.tokenizer = load_tokenizer(cfg.policy.path)
        self.base = merged_starting_base(cfg.policy, self.out, acc)
        models = build_models(cfg, self.base, self.tokenizer, acc)
        self.actor, self.critic, self.ref_model = models.actor, models.critic, models.ref_model
        self.actor_opt, self.critic_opt = models.actor_opt, models.critic_opt
        self.eos_ids = eos_token_ids(self.tokenizer, self._unwrapped_actor())
        self.kl_ctl = kl_controller(cfg)
        self.moments = pm.RunningMoments() if cfg.normalize_rewards else None
        self.rng = random.Random(cfg.seed + acc.process_index)
        self._order: list[int] = []
        self.prompts_truncated = 0
        self.engine, self._own_engine = rollout_engine(
            cfg, self.base, engine, engine_factory, acc.num_processes
        )

    def _unwrapped_actor(self):
        return self.accelerator.unwrap_model(self.actor)

    def _next_rows(self) -> list[dict[str, Any]]:
        out = []
        while len(out) < self.cfg.batch_size:
            if not self._order:
                self._order = list(range(len(self.rows)))
                self.rng.shuffle(self._order)
            out.append(self.rows[self._order.pop()])
        return out

    def _query_ids(self, prompt: list[dict]) -> list[int]:
        """Tokenised exactly as the vLLM engine does: chat template text, then no extra special tokens."""
        text = self.tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if len(ids) > self.cfg.max_prompt_tokens:
            self.prompts_truncated += 1
            ids = ids[-self.cfg.max_prompt_tokens :]
        return ids

    # -- rollout helpers (the functions live in ppo_rollout) ----------------------------------------
    def _generate(
        self, rows: list[dict[str, Any]]
    ) -> tuple[list[list[int]], list[list[int]], torch.Tensor | None]:
        """(query ids, raw response ids, sampling log-probs or None) with each prompt repeated
        num_generations times; engine rollouts have no log-probs here (HF re-scores them)."""
        n = self.cfg.num_generations
        queries = [self._query_ids(r["prompt"]) for r in rows for _ in range(n)]
        actor = self._unwrapped_actor()
        if self.cfg.rollout == "engine":
            prompts, seed = [r["prompt"] for r in rows], self.rng.randrange(2**31)
            adapter_dir = self.out / "rollout_adapter"
            return queries, engine_generate(self.engine, actor, prompts, self.cfg, adapter_dir, seed), None
        responses, logp = hf_generate(
            actor, self.tokenizer, queries, self.eos_ids, self.cfg, self.accelerator
        )
        return queries, responses, logp

    def _left_pad(self, queries: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        return left_pad(queries, self.tokenizer.pad_token_id, self.accelerator.device)

    def _forward_inputs(self, q_ids, q_attn, r_ids, r_mask) -> dict[str, torch.Tensor]:
        return forward_inputs(q_ids, q_attn, r_ids, r_mask)

    def _logprobs(self, model, inputs, r_ids, with_entropy: bool = False):
        # only the positions that predict response tokens: the LM head over a 100k+ vocabulary is costly
        keep = r_ids.shape[1] + 1
        logits = model(**inputs, use_cache=False, logits_to_keep=keep).logits[:, :-1]
        logp = pm.logprobs_from_logits(logits, r_ids, self.cfg.temperature)
        ent = None
        if with_entropy:  # logged only: no autograd graph over [batch, len, vocab]
            with torch.no_grad():
                ent = pm.entropy_from_logits(logits, self.cfg.temperature)
        return logp, ent

    def _ref_logprobs(self, inputs, r_ids):
        if self.ref_model is not None:  # not prepared: the actor's autocast is applied here
            with self.accelerator.autocast():
                return self._logprobs(self.ref_model, inputs, r_ids)[0]
        with self._unwrapped_actor().disable_adapter():
            return self._logprobs(self.actor, inputs, r_ids)[0]

    # -- one iteration -----------------------------------------------------------------------------
    def step(self) -> dict[str, float]:
        """One PPO iteration: rollout, score, estimate under the old policy, optimise; returns metrics."""
        t0 = time.perf_counter()
        rows = self._next_rows()
        rollout = self._rollout(rows)
        t_rollout = time.perf_counter()
        scores = self._score(rows, rollout)
        t_score = time.perf_counter()
        est = self._estimate(rollout, scores)
        stats = optimise(self, rollout, scores, est)
        t_end = time.perf_counter()

        seq_kl = pm.masked_sum(est.kl, scores.mask, dim=1)
        mean_kl = process_mean(self.accelerator, seq_kl[scores.valid]) if bool(scores.valid.any()) else 0.0
        self.kl_ctl.update(mean_kl, len(rollout.queries) * self.accelerator.num_processes)
        times = (t0, t_rollout, t_score, t_end)
        return iteration_metrics(
            self.accelerator, rollout, scores, est, stats, (seq_kl, mean_kl), times, self.prompts_truncated
        )

    def _rollout(self, rows: list[dict[str, Any]]) -> Rollout:
        """Sample ``num_generations`` responses per row and cut each at its first EOS or stop string."""
        queries, raw, sampled_logp = self._generate(rows)
        # HF generate pads a row that stopped, the engine ends it there: both cut the same
        raw, stopped = cut_at_stop(raw, raw_decoder(self.tokenizer), self.cfg.stop_strings or ())
        pad, dev = self.tokenizer.pad_token_id, self.accelerator.device
        return cut_at_eos(queries, raw, sampled_logp, self.eos_ids, pad, dev, stopped)

    def _score(self, rows: list[dict[str, Any]], rollout: Rollout) -> Scores:
        gather = self.accelerator.gather if self.accelerator.num_processes > 1 else None
        return score_rollout(
            self.reward_fn, self.tokenizer, self.eos_ids, rows, rollout, self.cfg, self.moments, gather
        )

    def _estimate(self, rollout: Rollout, scores: Scores) -> Estimates:
        """KL-penalised per-token rewards (score on the last token), GAE advantages and returns."""
        cfg = self.cfg
        q_ids, q_attn = self._left_pad(rollout.queries)
        inputs = self._forward_inputs(q_ids, q_attn, rollout.response_ids, rollout.response_mask)
        old_logp, ref_logp, old_values = self._old_policy_statistics(rollout, inputs, q_ids.shape[1])
        kl_coef = self.kl_ctl.value
        rewards, kl = pm.kl_penalised_rewards(old_logp, ref_logp, scores.shaped, scores.mask, kl_coef)
        advantages, returns = pm.gae_advantages(rewards, old_values, scores.mask, cfg.gamma, cfg.lam)
        if cfg.whiten_advantages:
            acc = self.accelerator
            reduce = (lambda x: all_reduce(acc, x)) if acc.num_processes > 1 else None
            advantages = pm.masked_whiten(advantages, scores.mask, all_reduce=reduce)
        return Estimates(inputs, q_ids.shape[1], old_logp, old_values, kl, kl_coef, advantages, returns)

    def _old_policy_statistics(self, rollout: Rollout, inputs, context: int):
        """(old log-probs, reference log-probs, values) under the current (old) policy, the reference
        and the critic, per minibatch and without gradients."""
        r_ids, size = rollout.response_ids, self.cfg.minibatch_size
        old_logp, ref_logp, old_values = [], [], []
        with torch.no_grad():
            for s in range(0, len(rollout.queries), size):
                sl = slice(s, s + size)
                mb = {k: v[sl] for k, v in inputs.items()}
                if rollout.sampled_logp is None or self.mixed:  # engine rollouts / autocast: forward pass
                    old_logp.append(self._logprobs(self.actor, mb, r_ids[sl])[0])
                ref_logp.append(self._ref_logprobs(mb, r_ids[sl]))
                old_values.append(self.critic(**mb)[:, context - 1 : -1])
        dev = self.accelerator.device
        old = torch.cat(old_logp) if old_logp else rollout.sampled_logp.to(dev) * rollout.response_mask
        return old, torch.cat(ref_logp), torch.cat(old_values)

    # -- the run -----------------------------------------------------------------------------------
    def train(self, label: str = "ppo") -> StageResult:
        """``label`` names the progress line (a run passes its stage's name, e.g. ``final/train``)."""
        cfg, acc = self.cfg, self.accelerator
        key = checkpoint_key(self)
        done, history = ppo_checkpoint.resume(self, key) if cfg.save_steps else (0, [])
        if done and acc.is_main_process:
            print(f"ppo: resumed from the checkpoint after step {done} of {cfg.max_steps}", file=sys.stderr)
        untracked = [t for t in cfg.report_to if t != "tensorboard"]
        if untracked and acc.is_main_process:  # our own loop has no transformers integrations
            print(f"ppo: report_to {untracked} is not supported by PPO (tensorboard is)", file=sys.stderr)
        writer = MetricsWriter(
            self.out / "metrics.jsonl",
            enabled=acc.is_main_process,
            resume_step=done,
            tensorboard_dir=tensorboard_dir(cfg),
        )
        progress = ppo_batch.ppo_progress(label, cfg.max_steps, done, acc.is_main_process)
        try:
            for it in range(done + 1, cfg.max_steps + 1):
                metrics = {"stage": "ppo", "step": it, **self.step()}
                history.append(metrics)
                progress.advance(note=ppo_batch.iteration_note(metrics))
                if it % cfg.logging_steps == 0 or it == cfg.max_steps:
                    writer.write(metrics)
                kill_if_fault_step(it)
                if cfg.save_steps and it % cfg.save_steps == 0 and it < cfg.max_steps:
                    ppo_checkpoint.save(self, it, history, key)
        finally:
            writer.close()
            progress.__exit__(None, None, None)
            if self._own_engine and self.engine is not None:
                self.engine.close()
        return self.save(history)

    def save(self, history: list[dict[str, Any]]) -> StageResult:
        """The actor, the critic and ``result.json`` (:mod:`rlaif.train.ppo_save`)."""
        return save_stage(self, history)


def run_ppo(
    cfg: PPOConfig,
    *,
    prompts: list[PromptRecord] | None = None,
    reward_fn: RewardFn | None = None,
    engine: Engine | None = None,
    engine_factory: Callable[[Path], Engine] | None = None,
    label: str = "ppo",
) -> StageResult:
    """Train with PPO and save the actor (adapter or model), the critic, metrics.jsonl and result.json;
    ``label`` names the progress line on stderr."""
    trainer = PPOTrainer(
        cfg, prompts=prompts, reward_fn=reward_fn, engine=engine, engine_factory=engine_factory
    )
    return trainer.train(label)
