"""PPO with a critic for language models - ours, since TRL removed its PPOTrainer.

One iteration: sample responses for a batch of prompts (HF ``generate`` or a vLLM engine serving the
current LoRA adapter), cut them at the first EOS, score them (a reward model or any reward callable),
then run ``ppo_epochs`` passes of clipped-ratio policy updates and clipped value updates over the batch.
The arithmetic lives in :mod:`rlaif.train.ppo_math`; this module only wires models and data.

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

Non-guarantees: engine rollouts run in a single process (the engine is not shared across ranks);
under several processes the prompt set is sharded and metrics are averaged over ranks.
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from rlaif.engines.base import Engine, Sampling
from rlaif.errors import ConfigError
from rlaif.records import PromptRecord
from rlaif.train import ppo_math as pm
from rlaif.train.common import MetricsWriter, StageResult, load_prompt_records, prompt_rows
from rlaif.train.configs import PolicySpec, PPOConfig
from rlaif.train.rewards import RewardFn, call_reward, load_reward


def _read_ptx_texts(path: Path) -> list[str]:
    from rlaif.records import iter_json_lines

    if path.suffix in (".jsonl", ".gz"):
        texts = []
        for lineno, obj in iter_json_lines(path):
            if not isinstance(obj.get("text"), str):
                raise ConfigError(f"{path}:{lineno}: ptx record needs a string field 'text'")
            texts.append(obj["text"])
    elif path.is_file():
        texts = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        raise ConfigError(f"ptx_data: file not found: {path}")
    if not texts:
        raise ConfigError(f"ptx_data: no text in {path}")
    return texts


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

        from rlaif.train.critic import load_critic
        from rlaif.train.models import check_model_dir, disable_dropout, load_causal_lm, load_tokenizer
        from rlaif.train.precision import fresh_accelerator

        self.cfg = cfg
        self.accelerator = fresh_accelerator(cfg.precision)
        acc = self.accelerator
        # under autocast the KV-cached sampling logits differ from a full forward by bf16 rounding:
        # the old log-probs are then recomputed exactly as the reference's and the update's
        self.mixed = acc.mixed_precision != "no"
        set_seed(cfg.seed + acc.process_index)
        self.out = Path(cfg.output_dir)
        check_model_dir(cfg.policy.path, "policy.path")

        # Data and reward
        records = (
            prompts if prompts is not None else load_prompt_records(cfg.prompts) if cfg.prompts else None
        )
        if not records:
            raise ConfigError("ppo: no prompts (set `prompts` files or pass prompts=)")
        self.rows = prompt_rows(records)[acc.process_index :: acc.num_processes]
        if reward_fn is None:
            if cfg.reward is None:
                raise ConfigError("ppo: no reward (set `reward` or pass reward_fn=)")
            reward_fn = load_reward(cfg.reward, device=str(acc.device))
        self.reward_fn = reward_fn
        self.ptx_texts = _read_ptx_texts(cfg.ptx_data) if cfg.ptx_coef > 0 and cfg.ptx_data else None

        # Models
        self.tokenizer = load_tokenizer(cfg.policy.path)
        self.base = self._starting_base()
        actor = load_causal_lm(self.base, torch.float32)
        self.ref_model = None
        if cfg.lora is not None:
            from peft import get_peft_model

            from rlaif.train.models import peft_lora_config

            actor = get_peft_model(actor, peft_lora_config(cfg.lora.model_copy(update={"dropout": 0.0})))
        else:
            # fp32 like the actor and run under its autocast: at step 0 both compute the same numbers
            self.ref_model = load_causal_lm(self.base, torch.float32).to(acc.device).eval()
            self.ref_model.requires_grad_(False)
        disable_dropout(actor)
        critic_path = cfg.critic_model or (cfg.reward.reward_model if cfg.reward else None) or self.base
        critic = load_critic(critic_path, cfg.critic_lora, self.tokenizer.pad_token_id, torch.float32)
        actor_opt = torch.optim.AdamW(
            [p for p in actor.parameters() if p.requires_grad], lr=cfg.learning_rate, foreach=True
        )
        critic_opt = torch.optim.AdamW(
            [p for p in critic.parameters() if p.requires_grad],
            lr=cfg.critic_learning_rate or cfg.learning_rate,
            foreach=True,
        )
        self.actor, self.critic, self.actor_opt, self.critic_opt = acc.prepare(
            actor, critic, actor_opt, critic_opt
        )
        self.actor.eval()  # no dropout anywhere; gradients still flow in eval mode
        self.critic.eval()

        gen_eos = getattr(self._unwrapped_actor().generation_config, "eos_token_id", None)
        eos_ids = {self.tokenizer.eos_token_id}
        eos_ids.update(gen_eos if isinstance(gen_eos, list) else [gen_eos] if gen_eos is not None else [])
        self.eos_ids = sorted(i for i in eos_ids if i is not None)
        self.kl_ctl = (
            pm.AdaptiveKLController(cfg.kl_coef, cfg.kl_target, cfg.kl_horizon)
            if cfg.adaptive_kl
            else pm.FixedKLController(cfg.kl_coef)
        )
        self.moments = pm.RunningMoments() if cfg.normalize_rewards else None
        self.rng = random.Random(cfg.seed + acc.process_index)
        self._order: list[int] = []
        self.prompts_truncated = 0

        # Rollout backend
        self.engine = engine
        self._own_engine = False
        if cfg.rollout == "engine":
            if acc.num_processes > 1:
                raise ConfigError(
                    "ppo: rollout='engine' runs in one process; use rollout='hf' with accelerate"
                )
            if self.base != Path(cfg.policy.path) and engine is not None and engine_factory is None:
                raise ConfigError(
                    f"ppo: the starting adapter was merged into {self.base}; the engine must serve that model. "
                    "Pass engine_factory= (called with the merged path) instead of an engine on the old base."
                )
            if engine_factory is not None and (engine is None or self.base != Path(cfg.policy.path)):
                self.engine, self._own_engine = engine_factory(self.base), True
            if self.engine is None:
                raise ConfigError("ppo: rollout='engine' needs an engine or engine_factory")

    # -- setup helpers -----------------------------------------------------------------------------
    def _starting_base(self) -> Path:
        if self.cfg.policy.adapter is None:
            return Path(self.cfg.policy.path)
        from rlaif.train.models import merge_policy

        base = self.out / "base"
        with self.accelerator.local_main_process_first():
            if self.accelerator.is_local_main_process:
                merge_policy(self.cfg.policy, base)
        return base

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

    # -- rollout -----------------------------------------------------------------------------------
    def _generate(
        self, rows: list[dict[str, Any]]
    ) -> tuple[list[list[int]], list[list[int]], torch.Tensor | None]:
        """(query ids, raw response ids, sampling log-probs or None) with each prompt repeated
        samples_per_prompt times; engine rollouts have no log-probs here (HF re-scores them)."""
        n = self.cfg.samples_per_prompt
        queries = [self._query_ids(r["prompt"]) for r in rows for _ in range(n)]
        if self.cfg.rollout == "engine":
            adapter = self.out / "rollout_adapter"
            self._unwrapped_actor().save_pretrained(str(adapter))
            sampling = Sampling(
                n=n,
                temperature=self.cfg.temperature,
                top_p=1.0,
                max_tokens=self.cfg.max_new_tokens,
                seed=self.rng.randrange(2**31),
            )
            outs = self.engine.generate([r["prompt"] for r in rows], sampling, adapter=str(adapter))
            responses = [list(c.token_ids or []) for per_prompt in outs for c in per_prompt]
            return queries, responses, None
        from transformers import GenerationConfig, LogitsProcessorList

        gen_cfg = GenerationConfig(
            do_sample=True,
            temperature=1.0,  # the temperature is applied by pm.SampledLogprobs
            top_k=0,
            top_p=1.0,
            max_new_tokens=self.cfg.max_new_tokens,
            eos_token_id=self.eos_ids,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        recorder = pm.SampledLogprobs(self.cfg.temperature)
        ids, attn = self._left_pad(queries)
        with torch.no_grad(), self.accelerator.autocast():
            seqs = self._unwrapped_actor().generate(
                input_ids=ids,
                attention_mask=attn,
                generation_config=gen_cfg,
                logits_processor=LogitsProcessorList([recorder]),
            )
        responses = seqs[:, ids.shape[1] :]
        return queries, [row.tolist() for row in responses.cpu()], recorder.finish(responses)

    def _left_pad(self, queries: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(q) for q in queries)
        ids = torch.full((len(queries), width), self.tokenizer.pad_token_id, dtype=torch.long)
        attn = torch.zeros_like(ids)
        for i, q in enumerate(queries):
            ids[i, width - len(q) :] = torch.tensor(q, dtype=torch.long)
            attn[i, width - len(q) :] = 1
        return ids.to(self.accelerator.device), attn.to(self.accelerator.device)

    def _forward_inputs(self, q_ids, q_attn, r_ids, r_mask) -> dict[str, torch.Tensor]:
        input_ids = torch.cat([q_ids, r_ids], dim=1)
        attention_mask = torch.cat([q_attn, r_mask], dim=1)
        position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids}

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

    def _ptx_loss(self) -> torch.Tensor:
        texts = self.rng.sample(self.ptx_texts, min(self.cfg.ptx_batch_size, len(self.ptx_texts)))
        limit = self.cfg.max_prompt_tokens + self.cfg.max_new_tokens
        batch = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=limit)
        batch = batch.to(self.accelerator.device)
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        return self.actor(**batch, labels=labels, use_cache=False).loss

    # -- one iteration -----------------------------------------------------------------------------
    def step(self) -> dict[str, float]:
        cfg, acc, dev = self.cfg, self.accelerator, self.accelerator.device
        t0 = time.perf_counter()
        rows = self._next_rows()
        queries, raw, sampled_logp = self._generate(rows)
        width = max(1, max(len(r) for r in raw))
        padded = torch.full((len(raw), width), self.tokenizer.pad_token_id, dtype=torch.long)
        for i, r in enumerate(raw):
            padded[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        r_ids, r_mask, has_eos = pm.truncate_at_eos(padded, self.eos_ids, self.tokenizer.pad_token_id)
        r_ids, r_mask, has_eos = r_ids.to(dev), r_mask.to(dev), has_eos.to(dev)
        t_gen = time.perf_counter()

        # Score
        n = cfg.samples_per_prompt
        prompts = [r["prompt"] for r in rows for _ in range(n)]
        texts = [
            self.tokenizer.decode(
                [t for t in ids[: int(m.sum())] if t not in self.eos_ids], skip_special_tokens=True
            )
            for ids, m in zip(r_ids.tolist(), r_mask.cpu(), strict=True)
        ]
        completions = [[{"role": "assistant", "content": t}] for t in texts]
        columns = {k: [r[k] for r in rows for _ in range(n)] for k in rows[0] if k != "prompt"}
        completion_ids = [ids[: int(m.sum())] for ids, m in zip(r_ids.tolist(), r_mask.cpu(), strict=True)]
        raw_scores = call_reward(
            self.reward_fn, prompts, completions, completion_ids=completion_ids, **columns
        )
        valid = torch.tensor([s is not None for s in raw_scores], device=dev)
        scores = torch.tensor([0.0 if s is None else s for s in raw_scores], device=dev, dtype=torch.float32)
        scores_in = pm.apply_missing_eos_penalty(scores, has_eos, cfg.missing_eos_penalty)
        if self.moments is not None or cfg.reward_clip is not None:
            scores_in = torch.where(valid, scores_in, torch.zeros_like(scores_in))
            scores_in = pm.normalise_scores(scores_in, self.moments, cfg.reward_clip)
        mask = (r_mask * valid.unsqueeze(1)).float()
        t_score = time.perf_counter()

        # Rollout statistics under the current (old) policy, the reference and the critic
        q_ids, q_attn = self._left_pad(queries)
        context = q_ids.shape[1]
        inputs = self._forward_inputs(q_ids, q_attn, r_ids, r_mask)
        old_logp, ref_logp, old_values = [], [], []
        with torch.no_grad():
            for s in range(0, len(raw), cfg.minibatch_size):
                sl = slice(s, s + cfg.minibatch_size)
                mb = {k: v[sl] for k, v in inputs.items()}
                if sampled_logp is None or self.mixed:  # engine rollouts / autocast: forward pass
                    old_logp.append(self._logprobs(self.actor, mb, r_ids[sl])[0])
                ref_logp.append(self._ref_logprobs(mb, r_ids[sl]))
                old_values.append(self.critic(**mb)[:, context - 1 : -1])
        old_logp = torch.cat(old_logp) if old_logp else sampled_logp.to(dev) * r_mask
        ref_logp, old_values = torch.cat(ref_logp), torch.cat(old_values)
        kl_coef = self.kl_ctl.value
        rewards, kl = pm.kl_penalised_rewards(old_logp, ref_logp, scores_in, mask, kl_coef)
        advantages, returns = pm.gae_advantages(rewards, old_values, mask, cfg.gamma, cfg.lam)
        if cfg.whiten_advantages:
            advantages = pm.masked_whiten(advantages, mask)

        # PPO epochs
        stats: dict[str, list[float]] = {k: [] for k in ("pg", "vf", "clip", "vclip", "akl", "ent", "ptx")}
        for _ in range(cfg.ppo_epochs):
            perm = torch.randperm(
                len(raw), generator=torch.Generator().manual_seed(self.rng.randrange(2**31))
            )
            for s in range(0, len(raw), cfg.minibatch_size):
                idx = perm[s : s + cfg.minibatch_size].to(dev)
                mb = {k: v[idx] for k, v in inputs.items()}
                m = mask[idx]
                logp, ent = self._logprobs(self.actor, mb, r_ids[idx], with_entropy=True)
                pg_loss, clipfrac, approx_kl = pm.policy_loss(
                    logp, old_logp[idx], advantages[idx], m, cfg.cliprange
                )
                loss = pg_loss
                if self.ptx_texts is not None:
                    ptx = self._ptx_loss()
                    loss = loss + cfg.ptx_coef * ptx
                    stats["ptx"].append(float(ptx.detach()))
                acc.backward(loss)
                acc.clip_grad_norm_(self.actor.parameters(), cfg.max_grad_norm)
                self.actor_opt.step()
                self.actor_opt.zero_grad(set_to_none=True)

                vpred = self.critic(**mb)[:, context - 1 : -1]
                vf_loss, vclip = pm.value_loss(vpred, old_values[idx], returns[idx], m, cfg.cliprange_value)
                acc.backward(cfg.vf_coef * vf_loss)
                acc.clip_grad_norm_(self.critic.parameters(), cfg.max_grad_norm)
                self.critic_opt.step()
                self.critic_opt.zero_grad(set_to_none=True)
                for key, val in (
                    ("pg", pg_loss),
                    ("vf", vf_loss),
                    ("clip", clipfrac),
                    ("vclip", vclip),
                    ("akl", approx_kl),
                    ("ent", pm.masked_mean(ent.detach(), m)),
                ):
                    stats[key].append(float(val.detach()))
        t_end = time.perf_counter()

        seq_kl = pm.masked_sum(kl, mask, dim=1)
        mean_kl = self._mean(seq_kl[valid]) if bool(valid.any()) else 0.0
        self.kl_ctl.update(mean_kl, len(raw) * acc.num_processes)
        lengths = r_mask.sum(dim=1).float()
        tokens = float(acc.gather(lengths.sum().reshape(1)).sum())
        return {
            "score": self._mean(scores[valid]) if bool(valid.any()) else float("nan"),
            "score_std": float(scores[valid].std()) if int(valid.sum()) > 1 else 0.0,
            "reward": self._mean(scores_in[valid]) if bool(valid.any()) else float("nan"),
            "kl": mean_kl,
            "kl_coef": kl_coef,
            "non_score_reward": self._mean((-kl_coef * seq_kl)[valid]) if bool(valid.any()) else 0.0,
            "policy_loss": _avg(stats["pg"]),
            "value_loss": _avg(stats["vf"]),
            "clipfrac": _avg(stats["clip"]),
            "value_clipfrac": _avg(stats["vclip"]),
            "approx_kl": _avg(stats["akl"]),
            "entropy": _avg(stats["ent"]),
            "ptx_loss": _avg(stats["ptx"]) if stats["ptx"] else None,
            "explained_variance": pm.explained_variance(old_values, returns, mask),
            "response_length": self._mean(lengths),
            "eos_rate": self._mean(has_eos.float()),
            "reward_none": int(acc.gather((~valid).sum().reshape(1)).sum()),
            "prompts_truncated": self.prompts_truncated,
            "time_rollout_s": t_gen - t0,
            "time_score_s": t_score - t_gen,
            "time_update_s": t_end - t_score,
            "tokens_per_s": tokens / max(t_end - t0, 1e-9),
            "response_tokens": tokens,
        }

    def _mean(self, x: torch.Tensor) -> float:
        x = x.detach().float().reshape(-1)
        total = self.accelerator.gather(
            torch.stack([x.sum(), torch.tensor(float(x.numel()), device=x.device)])
        )
        total = total.reshape(-1, 2).sum(dim=0)
        return float(total[0] / total[1].clamp(min=1))

    # -- the run -----------------------------------------------------------------------------------
    def train(self) -> StageResult:
        cfg, acc = self.cfg, self.accelerator
        writer = MetricsWriter(self.out / "metrics.jsonl", enabled=acc.is_main_process)
        history: list[dict[str, Any]] = []
        try:
            for it in range(1, cfg.steps + 1):
                metrics = {"stage": "ppo", "step": it, **self.step()}
                history.append(metrics)
                if it % cfg.log_every == 0 or it == cfg.steps:
                    writer.write(metrics)
        finally:
            writer.close()
            if self._own_engine and self.engine is not None:
                self.engine.close()
        return self.save(history)

    def save(self, history: list[dict[str, Any]]) -> StageResult:
        from rlaif.train.critic import save_critic
        from rlaif.train.models import merge_policy, save_full_model

        cfg, acc = self.cfg, self.accelerator
        acc.wait_for_everyone()
        result = StageResult(
            stage="ppo",
            output_dir=self.out,
            base_model=self.base,
            metrics_path=self.out / "metrics.jsonl",
            metrics=history[-1] if history else {},
            counts={
                "steps": len(history),
                "prompts": len(self.rows) * acc.num_processes,
                "world_size": acc.num_processes,
            },
            extra={"score_curve": [h["score"] for h in history], "kl_curve": [h["kl"] for h in history]},
        )
        if acc.is_main_process:
            actor = self._unwrapped_actor()
            if cfg.lora is not None:
                result.adapter = self.out / "adapter"
                actor.save_pretrained(str(result.adapter))
                self.tokenizer.save_pretrained(str(result.adapter))
                if cfg.save == "merged":
                    result.merged_model = merge_policy(
                        PolicySpec(path=self.base, adapter=result.adapter), self.out / "model"
                    )
            else:
                result.base_model = save_full_model(actor, self.tokenizer, self.out / "model")
            if cfg.save_critic:
                result.extra["critic"] = str(
                    save_critic(acc.unwrap_model(self.critic), self.tokenizer, self.out / "critic")
                )
            shutil.rmtree(self.out / "rollout_adapter", ignore_errors=True)
            result.write()
        acc.wait_for_everyone()
        return result


def _avg(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def run_ppo(
    cfg: PPOConfig,
    *,
    prompts: list[PromptRecord] | None = None,
    reward_fn: RewardFn | None = None,
    engine: Engine | None = None,
    engine_factory: Callable[[Path], Engine] | None = None,
) -> StageResult:
    """Train with PPO and save the actor (adapter or model), the critic, metrics.jsonl and result.json."""
    trainer = PPOTrainer(
        cfg, prompts=prompts, reward_fn=reward_fn, engine=engine, engine_factory=engine_factory
    )
    return trainer.train()
