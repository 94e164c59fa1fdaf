"""Files a run writes get the user's umask: our atomic writes (report.html, metrics.json, every JSONL)
and the model directories saved through safetensors, which itself writes 0600 files."""

from __future__ import annotations

import os
import stat

import pytest

from rlaif.files import apply_umask, atomic_write_json, atomic_write_text, umask_mode
from rlaif.records import write_jsonl


@pytest.fixture(params=[0o022, 0o027, 0o077])
def umask(request):
    before = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(before)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_umask_mode_reads_the_current_umask(umask):
    assert umask_mode() == 0o666 & ~umask and umask_mode(directory=True) == 0o777 & ~umask
    assert os.umask(umask) == umask  # reading it left it as it was


def test_atomic_writes_get_the_umask_mode(tmp_path, umask):
    atomic_write_text(tmp_path / "report.html", "<html></html>")
    atomic_write_json(tmp_path / "metrics.json", {"a": 1})
    write_jsonl(tmp_path / "pairs.jsonl", [{"id": "x"}])
    for name in ("report.html", "metrics.json", "pairs.jsonl"):
        assert mode(tmp_path / name) == 0o666 & ~umask, name
    assert (tmp_path / "metrics.json").read_text() == '{\n  "a": 1\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "pairs.jsonl", "report.html"]


def test_a_failed_atomic_write_leaves_no_temp_file_and_the_old_content(tmp_path):
    from rlaif.files import atomic_writer

    target = tmp_path / "metrics.json"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_writer(target) as fh:
        fh.write("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_apply_umask_opens_up_what_safetensors_wrote(tmp_path, umask):
    import torch
    from safetensors.torch import save_file

    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    save_file({"w": torch.zeros(2)}, model / "model.safetensors")
    script = model / "sub" / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o700)
    os.chmod(model / "sub", 0o700)
    apply_umask(model)
    assert mode(model / "model.safetensors") == 0o666 & ~umask
    assert mode(model / "sub") == mode(model) == 0o777 & ~umask
    assert mode(script) == 0o777 & ~umask  # execute bits kept, as far as the umask allows


def test_a_tiny_model_directory_is_readable_as_the_umask_says(tmp_path):
    """The real save path (transformers -> safetensors) that used to leave model.safetensors 0600."""
    from rlaif.tiny_model import build_tiny_model

    before = os.umask(0o022)
    try:
        out = build_tiny_model(tmp_path / "model", seed=0)
    finally:
        os.umask(before)
    files = [p for p in out.iterdir() if p.is_file()]
    assert any(p.suffix == ".safetensors" for p in files)
    assert {p.name: mode(p) for p in files} == {p.name: 0o644 for p in files}


def test_a_saved_full_model_is_readable_as_the_umask_says(tmp_path, tiny_model_dir):
    """save_full_model: the path of merged policies, reward models, critics and PPO's full model."""
    from rlaif.train.models import load_causal_lm, load_tokenizer, save_full_model

    before = os.umask(0o027)
    try:
        out = save_full_model(load_causal_lm(tiny_model_dir), load_tokenizer(tiny_model_dir), tmp_path / "m")
    finally:
        os.umask(before)
    modes = {p.name: mode(p) for p in out.iterdir()}
    assert "model.safetensors" in modes and set(modes.values()) == {0o640}, modes
