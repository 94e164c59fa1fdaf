"""Run by tests/train/test_grpo_ddp.py, in one process or under ``accelerate launch``: two GRPO or RLOO
steps of TRL's trainer, built from our stage config, on fixed rollouts; then save the model.

Why fixed rollouts: TRL seeds every process differently (``set_seed(seed, device_specific=True)``
in its trainers) and samples each process's prompts as one batch, so one process and two processes
cannot draw the same completions - equal weights are impossible with sampling. With the completions
fixed per (prompt, place in its group) (the trainers' one sampling method is replaced), everything after the rollout -
rewards gathered over processes, group advantages, the loss normalisation, the DDP gradient
all-reduce - must give the weights of one process holding the whole batch. Completions have different
lengths, so the two processes hold different numbers of completion tokens.

Usage: grpo_ddp_worker.py grpo|rloo MODEL_DIR OUT_DIR BATCH_PER_PROCESS
"""

from __future__ import annotations

import os
import sys
from collections import Counter

import torch

from rlaif.records import Message, PromptRecord
from rlaif.train.common import prompt_rows
from rlaif.train.configs import GRPOConfig, PolicySpec, RLOOConfig
from rlaif.train.grpo import _trl_trainer_and_args
from rlaif.train.models import load_causal_lm, load_tokenizer

GROUP = 4


def fixed_completions(prompt_ids: list[list[int]], eos: int) -> list[list[int]]:
    """A completion of 2..7 tokens and EOS, chosen by the prompt and its place in its group (a group
    never spans two processes here, so the place is the same in one process and in two)."""
    seen: Counter = Counter()
    out = []
    for ids in prompt_ids:
        k = seen[tuple(ids)]
        seen[tuple(ids)] += 1
        length = 2 + (sum(ids) + 3 * k) % 6
        out.append([(ids[-1] * (j + 3) + 7 * k) % 97 + 5 for j in range(length)] + [eos])
    return out


def fixed_rollout_trainer(base):
    """``base`` (TRL's GRPOTrainer or RLOOTrainer) with its sampling replaced by fixed completions."""

    class FixedRollout(base):
        def _generate_single_turn(self, prompt_ids, *args, **kwargs):
            completions = fixed_completions(prompt_ids, self.processing_class.eos_token_id)
            return (completions, None) if base.__name__ == "GRPOTrainer" else completions

    return FixedRollout


def reward(prompts, completions, completion_ids, **_):
    return [float(len(ids) % 3) - 0.5 * float(ids[0] % 2) for ids in completion_ids]


def main() -> None:
    stage, model_dir, out, per_process = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    torch.use_deterministic_algorithms(True)
    prompts = [
        PromptRecord(id=f"q{i}", messages=[Message(role="user", content=f"Say something about item {i}.")])
        for i in range(8)
    ]
    config_cls = GRPOConfig if stage == "grpo" else RLOOConfig
    cfg = config_cls(
        output_dir=out,
        policy=PolicySpec(path=model_dir),
        prompts=[os.devnull],
        lora=None,
        num_generations=GROUP,
        per_device_train_batch_size=per_process,
        max_completion_length=8,
        max_steps=2,
        learning_rate=0.5,
        # plain SGD: the weights then differ by the gradients' float noise alone (Adam divides
        # near-zero gradients by their own size and turns that noise into ~lr-sized steps)
        trainer_args={"optim": "sgd"},
        beta=0.04,  # the KL term to the reference model takes part too
        precision="fp32",
    )
    from datasets import Dataset

    tokenizer = load_tokenizer(model_dir)
    trainer_cls, args = _trl_trainer_and_args(cfg, stage)
    args.report_to = []
    trainer = fixed_rollout_trainer(trainer_cls)(
        model=load_causal_lm(model_dir, torch.float32),
        reward_funcs=[reward],
        args=args,
        train_dataset=Dataset.from_list(prompt_rows(prompts)),
        processing_class=tokenizer,
    )
    trainer.train()
    trainer.save_model(out)
    if trainer.accelerator.is_main_process:
        print({"world_size": trainer.accelerator.num_processes, "steps": trainer.state.global_step})


if __name__ == "__main__":
    main()
