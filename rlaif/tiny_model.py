"""Build a tiny Llama-architecture model directory locally, with no downloads.

Why: these machines reach no model hub, yet every stage (vLLM generation, judging, DPO, PPO) must be
exercised for real. The tiny model is a genuine HF + vLLM loadable checkpoint:

- a byte-level BPE tokenizer trained with ``tokenizers`` on a small bundled text (or the user's corpus);
- a chat template (``<|user|> ... <|end|>``) whose end-of-turn token is the EOS token;
- random weights with head_dim 64 (vLLM's CPU attention kernel rejects 16);
- deterministic for a seed: same seed, same tokenizer, same weights;
- optionally pre-trained for a few steps on a corpus (``steps``) so samples are less than noise.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from rlaif.errors import RlaifError
from rlaif.files import apply_umask

SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
BUNDLED_CORPUS = Path(__file__).parent / "assets" / "tiny_corpus.txt"


@dataclass(frozen=True)
class TinyModelSpec:
    """Shape of the tiny model. Defaults give ~0.5M parameters; head_dim = hidden / heads must be 64."""

    vocab_size: int = 512
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 2
    num_kv_heads: int = 2
    intermediate_size: int = 256
    max_position_embeddings: int = 1024

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads or self.hidden_size // self.num_heads != 64:
            raise RlaifError(
                f"tiny model: hidden_size/num_heads must be 64 (vLLM's CPU attention needs head_dim 64), "
                f"got {self.hidden_size}/{self.num_heads}"
            )


def _train_tokenizer(texts: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def build_tiny_model(
    out_dir: str | Path,
    seed: int = 0,
    spec: TinyModelSpec | None = None,
    corpus: str | Path | None = None,
    steps: int = 0,
    learning_rate: float = 3e-3,
    progress: bool = False,
) -> Path:
    """Write a loadable model directory to ``out_dir`` and return its path.

    ``corpus`` (a text file) trains the tokenizer and, with ``steps > 0``, pre-trains the weights with
    plain next-token prediction; without it the bundled text is used.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    spec = spec or TinyModelSpec()
    corpus_path = Path(corpus) if corpus else BUNDLED_CORPUS
    if not corpus_path.is_file():
        raise RlaifError(f"tiny model: corpus file not found: {corpus_path}")
    text = corpus_path.read_text(encoding="utf-8")
    if not text.strip():
        raise RlaifError(f"tiny model: corpus file is empty: {corpus_path}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    raw_tok = _train_tokenizer(text.splitlines(), spec.vocab_size)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw_tok,
        bos_token="<|bos|>",
        eos_token="<|end|>",
        pad_token="<|pad|>",
        chat_template=CHAT_TEMPLATE,
    )
    tokenizer.save_pretrained(out)
    vocab = len(tokenizer)

    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        head_dim=spec.hidden_size // spec.num_heads,
        max_position_embeddings=spec.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        attention_dropout=0.0,
        dtype="float32",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    if steps > 0:
        _pretrain(model, tokenizer, text, steps=steps, lr=learning_rate, seed=seed, progress=progress)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    apply_umask(out)  # safetensors writes its files 0600
    (out / "rlaif_tiny_model.json").write_text(
        json.dumps(
            {"seed": seed, "spec": spec.__dict__, "corpus": str(corpus_path), "steps": steps}, indent=2
        )
    )
    return out


def _pretrain(model, tokenizer, text: str, steps: int, lr: float, seed: int, progress: bool) -> None:
    """Plain next-token training on random windows of the corpus (a smoke pre-train, not a recipe)."""
    import torch

    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids[0]
    block = min(128, max(8, len(ids) // 2))
    if len(ids) <= block + 1:
        raise RlaifError("tiny model: corpus too short to pre-train on")
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    bar = None
    if progress:
        from rlaif.progress import StepProgress

        bar = StepProgress("pre-training", total=steps, unit="steps").__enter__()
    for step in range(steps):
        starts = torch.randint(0, len(ids) - block - 1, (8,), generator=gen)
        batch = torch.stack([ids[s : s + block] for s in starts.tolist()])
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for group in opt.param_groups:  # cosine decay
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        opt.step()
        opt.zero_grad()
        if bar is not None:
            bar.advance(note=f"loss {loss.item():.3f}")
    if bar is not None:
        bar.__exit__(None, None, None)
    model.eval()
