"""Run by tests/train/test_ppo_ddp.py, in one process or under ``accelerate launch``: a few PPO
iterations on fixed rollouts, then save actor and critic.

Why fixed rollouts: sampling draws from a per-rank seed, so one process and two processes would sample
different responses; with the responses fixed per prompt, everything after the rollout - scores,
reward moments, KL, advantages and their whitening, losses, the DDP gradient all-reduce, the KL
controller - must give the same weights as one process holding the whole batch. The responses have
different lengths per prompt, so the two processes hold different numbers of response tokens.

Usage: ppo_ddp_worker.py MODEL_DIR OUT_DIR BATCH_PER_PROCESS
"""

from __future__ import annotations

import json
import sys

import torch

from rlaif.records import Message, PromptRecord
from rlaif.train.configs import PolicySpec, PPOConfig
from rlaif.train.ppo import PPOTrainer


class FixedRolloutPPO(PPOTrainer):
    def _generate(self, rows):
        queries = [self._query_ids(r["prompt"]) for r in rows]
        eos = self.eos_ids[0]
        raw = []
        for q in queries:  # a response of 2..7 tokens chosen by the prompt, then EOS
            k = 2 + sum(q) % 6
            raw.append([(q[-1] * (j + 3)) % 97 + 5 for j in range(k)] + [eos])
        return queries, raw, None


def reward(prompts, completions, completion_ids, **_):
    return [float(len(ids) % 3) - 0.5 * float(ids[0] % 2) for ids in completion_ids]


def main() -> None:
    model, out, per_process = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.use_deterministic_algorithms(True)
    prompts = [
        PromptRecord(id=f"q{i}", messages=[Message(role="user", content=f"Say something about item {i}.")])
        for i in range(8)
    ]
    cfg = PPOConfig(
        output_dir=out,
        policy=PolicySpec(path=model),
        lora=None,
        max_steps=3,
        batch_size=per_process,
        minibatch_size=per_process,  # one global minibatch per epoch, so sample order cannot matter
        ppo_epochs=2,
        learning_rate=1e-3,
        critic_learning_rate=1e-3,
        adaptive_kl=True,
        kl_coef=0.1,
        normalize_rewards=True,
        whiten_advantages=True,
        missing_eos_penalty=None,
        save_critic=True,
        precision="fp32",
    )
    trainer = FixedRolloutPPO(cfg, prompts=prompts, reward_fn=reward)
    result = trainer.train()
    if trainer.accelerator.is_main_process:
        (trainer.out / "kl_coef.json").write_text(json.dumps({"kl_coef": trainer.kl_ctl.value}))
    print(result.counts)


if __name__ == "__main__":
    main()
