"""The progress display used by chunked stages, training and the engine (rlaif.progress), on a stream
that is not a terminal (a log file, a pipe): plain lines with counts, ETA, and "(cached)"."""

from __future__ import annotations

import io

from rlaif import progress
from rlaif.progress import StepProgress, TqdmLike


def test_plain_lines_count_cached_steps_apart_and_give_an_eta(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(progress, "_now", lambda: now[0])
    stream = io.StringIO()
    with StepProgress("feedback", total=4, unit="chunks", stream=stream) as bar:
        bar.advance(cached=True)  # read back from disk: shown, but not used for the ETA
        now[0] = 10.0
        bar.advance()  # 10 s for the first fresh chunk -> 2 left at 10 s each
        now[0] = 12.0
        bar.advance()  # within 10 s of the last line: not written
        now[0] = 30.0
        bar.advance()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "feedback: 1/4 chunks (cached), 0:00:00 elapsed"
    assert lines[1] == "feedback: 2/4 chunks, 0:00:10 elapsed, ETA 0:00:20"
    assert lines[-1] == "feedback: 4/4 chunks, 0:00:30 elapsed" and len(lines) == 3


def test_plain_lines_are_throttled_but_the_last_one_is_always_written():
    stream = io.StringIO()
    with StepProgress("training", total=500, stream=stream) as bar:
        for _ in range(500):
            bar.advance(note="loss 0.5")
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("training: 1/500 steps") and lines[-1].startswith("training: 500/500 steps")
    assert len(lines) < 10 and lines[-1].endswith("loss 0.5")


def test_tqdm_interface_for_vllm():
    stream = io.StringIO()
    bar = TqdmLike(total=3, desc="Processed prompts", dynamic_ncols=True, postfix="x")
    bar._progress.stream = stream
    bar.update(2)
    bar.postfix = "est. speed"
    assert bar.format_dict["elapsed"] > 0 and bar.n == 2
    bar.update(1)
    bar.refresh()
    bar.close()
    assert stream.getvalue().splitlines()[-1].startswith("generating: 3/3 requests")


def test_tqdm_interface_passes_vllms_prompt_list_through_and_names_the_generation(monkeypatch):
    """vLLM wraps its prompt list in the same callable (``tqdm(prompts, desc=...)``); the request bar
    takes the label set around the call and vLLM's output speed as its note."""
    from rlaif.progress import generation_label

    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    assert list(TqdmLike(["a", "b"], desc="Rendering prompts")) == ["a", "b"]
    with generation_label("eval/code"):
        bar = TqdmLike(total=2, desc="Processed prompts", postfix="est. speed")
    bar.postfix = "est. speed input: 10.00 toks/s, output: 41.70 toks/s"
    bar.update(2)
    bar.close()
    start, line = stream.getvalue().splitlines()  # nothing drawn for the prompt list
    assert start == "eval/code: 0/2 requests, 0:00:00 elapsed"  # before the first request finishes
    assert line.startswith("eval/code: 2/2 requests, ") and line.endswith(", 42 tok/s"), line


def test_only_an_announced_display_writes_a_line_before_its_first_step():
    """A chunked stage enters its display after chunk 1 (a ``0/N`` line then would be wrong); an
    engine call's requests announce themselves, since the first one can take minutes."""
    quiet, loud = io.StringIO(), io.StringIO()
    with StepProgress("feedback", total=3, unit="chunks", stream=quiet):
        assert quiet.getvalue() == ""
    with StepProgress("eval", total=3, unit="requests", stream=loud, announce=True):
        assert loud.getvalue() == "eval: 0/3 requests, 0:00:00 elapsed\n"
