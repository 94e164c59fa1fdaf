"""Template loading, lookup, rendering and the ``rlaif prompts`` commands."""

from __future__ import annotations

import pytest

from rlaif.cli import main
from rlaif.errors import TemplateError
from rlaif.prompts import (
    REPO_PROMPTS_DIR,
    ChoiceParserSpec,
    ScoreParserSpec,
    find_data_file,
    list_templates,
    load_template,
)
from rlaif.records import stable_hash

JUDGE_TEMPLATES = [
    "self_rewarding_rubric",
    "pairwise",
    "pairwise_cot",
    "cai_principle_choice",
    "cai_principle_choice_cot",
]


class Dummy(str):
    """A value that works as text, as a list of itself and as an object with any attribute.

    Why: shipped templates loop over messages or examples and read fields of them; one dummy that
    survives all of that lets a single test render every template without knowing its variables.
    """

    def __getattr__(self, name: str) -> Dummy:
        if name.startswith("__"):
            raise AttributeError(name)
        return Dummy(f"{self}.{name}")

    def __iter__(self):
        return iter([Dummy(f"{self}[0]")])

    def __getitem__(self, key) -> Dummy:
        return Dummy(f"{self}[{key}]")


def write_template(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_every_shipped_template_renders_with_dummy_variables():
    templates = list_templates()
    names = {t.name for t in templates}
    assert set(JUDGE_TEMPLATES) | {"conversation_transcript"} <= names
    for tpl in templates:
        values = {v: Dummy(f"<<{v}>>") for v in tpl.variables}
        text = tpl.render(**values)
        assert text.strip(), tpl.name
        if tpl.name in JUDGE_TEMPLATES:
            for v in tpl.variables:  # the judge templates show every variable they declare
                assert f"<<{v}>>" in text, (tpl.name, v)


def test_judge_templates_declare_their_parsers():
    rubric = load_template("self_rewarding_rubric")
    assert isinstance(rubric.parser, ScoreParserSpec)
    assert (rubric.parser.min, rubric.parser.max) == (0, 5)
    assert (
        rubric.render(prompt="p", response="r")
        .rstrip()
        .endswith('"Score: N", where N is a whole number from 0 to 5.')
    )
    for name in ("pairwise", "cai_principle_choice"):
        spec = load_template(name).parser
        assert isinstance(spec, ChoiceParserSpec) and spec.labels == ["A", "B"] and spec.marker is None
    for name in ("pairwise_cot", "cai_principle_choice_cot"):
        assert load_template(name).parser.marker == "Answer:"


def test_conversation_transcript_shows_turns_with_roles():
    tpl = load_template("conversation_transcript")
    one = tpl.render(conversation=[{"role": "user", "content": "Is it safe?"}])
    assert one == "Is it safe?"
    many = tpl.render(
        conversation=[
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "bye"},
        ]
    )
    assert many == "User: hi\n\nAssistant: hello\n\nUser: bye"


def test_lookup_by_name_stem_and_path(tmp_path):
    by_name = load_template("pairwise")
    assert by_name.path == REPO_PROMPTS_DIR / "pairwise.j2"
    assert load_template(str(by_name.path)).content_hash == by_name.content_hash
    assert by_name.content_hash == stable_hash(by_name.path.read_text(encoding="utf-8"))
    path = write_template(tmp_path, "my_file.j2", "---\nname: fancy_name\nvariables: [x]\n---\nX={{ x }}\n")
    assert load_template(path).render(x=1) == "X=1"


def test_user_directory_shadows_shipped_templates(tmp_path, monkeypatch):
    write_template(tmp_path, "pairwise.j2", "---\nname: pairwise\nvariables: []\n---\nmine\n")
    write_template(tmp_path, "extra.j2", "---\nname: extra_judge\nvariables: []\n---\nextra\n")
    monkeypatch.setenv("RLAIF_PROMPTS_PATH", str(tmp_path))
    assert load_template("pairwise").render() == "mine"
    assert load_template("extra_judge").render() == "extra"  # by front-matter name
    assert load_template("extra").render() == "extra"  # by file stem
    assert [t.path.parent for t in list_templates() if t.name == "pairwise"] == [tmp_path]


def test_unknown_name_lists_known_templates():
    with pytest.raises(TemplateError, match=r"no template named 'nope' \(known: .*pairwise"):
        load_template("nope")
    with pytest.raises(TemplateError, match="template file not found: missing/x.j2"):
        load_template("missing/x.j2")


def test_duplicate_names_are_an_error(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_template(tmp_path / "a", "dup.j2", "---\nname: one\n---\nx\n")
    write_template(tmp_path / "b", "dup.j2", "---\nname: two\n---\ny\n")
    monkeypatch.setenv("RLAIF_PROMPTS_PATH", str(tmp_path))
    with pytest.raises(TemplateError, match="two templates named 'dup'"):
        load_template("dup")


def test_missing_and_undeclared_variables_name_template_and_variable(tmp_path):
    with pytest.raises(TemplateError, match=r"template 'pairwise' .*missing variable\(s\) response_b"):
        load_template("pairwise").render(prompt="p", response_a="a")
    path = write_template(tmp_path, "t.j2", "---\nname: t\nvariables: [a]\n---\n{{ a }} {{ sneaky }}\n")
    with pytest.raises(TemplateError, match="template 't' .*'sneaky' is undefined"):
        load_template(path).render(a="1")


@pytest.mark.parametrize(
    "text, message",
    [
        ("no front matter\n", "missing front matter"),
        ("---\nname: [unclosed\n---\nx\n", "front matter is not valid YAML"),
        ("---\nname: t\nparsr: {type: score}\n---\nx\n", "front matter field 'parsr': Extra inputs"),
        ("---\nname: t\nparser: {type: score, pattern: 'Score: \\d'}\n---\nx\n", "capturing group"),
        ("---\nname: t\nparser: {type: choice, labels: [A, A]}\n---\nx\n", "distinct"),
        ("---\nname: t\nparser: {type: banana}\n---\nx\n", "front matter field 'parser'"),
        ("---\nvariables: [x]\n---\nx\n", "front matter field 'name': Field required"),
        ("---\nname: t\n---\n{% if %}\n", r"t.j2:4: template syntax error"),
    ],
)
def test_malformed_templates_name_the_file(tmp_path, text, message):
    path = write_template(tmp_path, "t.j2", text)
    with pytest.raises(TemplateError, match=message) as info:
        load_template(path).render()
    assert str(path) in str(info.value)


def test_content_hash_follows_the_file(tmp_path):
    path = write_template(tmp_path, "t.j2", "---\nname: t\n---\nversion one\n")
    first = load_template(path).content_hash
    path.write_text("---\nname: t\n---\nversion two\n", encoding="utf-8")
    assert load_template(path).content_hash != first


def test_principles_file_is_found_by_name():
    from rlaif.judges import load_principles

    path = find_data_file("cai_principles")
    assert path == REPO_PROMPTS_DIR / "cai_principles.yaml"
    principles = load_principles("cai_principles")
    assert len(principles) == 16
    assert len({p.id for p in principles}) == 16
    assert all(p.text.endswith("?") or "?" in p.text for p in principles)


def test_cli_prompts_list_show_render(capsys):
    assert main(["prompts", "list"]) == 0
    out = capsys.readouterr().out
    for name in JUDGE_TEMPLATES:
        assert name in out
    assert "cai_principles" in out

    assert main(["prompts", "show", "pairwise_cot"]) == 0
    out = capsys.readouterr().out
    assert "# content_hash: " + load_template("pairwise_cot").content_hash in out
    assert "'marker': 'Answer:'" in out

    args = ["prompts", "render", "pairwise", "--var", "prompt=Why?", "--var", "response_a=Because."]
    assert main(args + ["--var", "response_b=No idea."]) == 0
    out = capsys.readouterr().out
    assert "<response_a>\nBecause.\n</response_a>" in out and "No idea." in out

    conv = '[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]'
    assert main(["prompts", "render", "conversation_transcript", "--var", f"conversation={conv}"]) == 0
    assert capsys.readouterr().out == "User: hi\n\nAssistant: yo\n"


def test_cli_render_errors_are_one_line(capsys):
    assert main(["prompts", "render", "pairwise", "--var", "prompt=x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: template 'pairwise'") and "response_a, response_b" in err
    assert main(["prompts", "render", "pairwise", "--var", "novalue"]) == 2
    assert "--var expects name=value" in capsys.readouterr().err


@pytest.mark.parametrize(("short", "spec_type"), [("score", ScoreParserSpec), ("choice", ChoiceParserSpec)])
def test_parser_shorthand_means_the_parser_with_its_defaults(tmp_path, short, spec_type):
    variables = "[prompt, response]" if short == "score" else "[prompt, response_a, response_b]"
    path = tmp_path / "mine.j2"
    path.write_text(f"---\nname: mine\nvariables: {variables}\nparser: {short}\n---\n{{{{ prompt }}}}\n")
    tpl = load_template(path)
    assert isinstance(tpl.parser, spec_type) and tpl.parser == spec_type()


@pytest.mark.parametrize(
    ("value", "message"),
    [("json", "'parser: json' needs a schema"), ("scores", "unknown parser 'scores'")],
)
def test_parser_shorthand_errors_name_the_field(tmp_path, value, message):
    path = tmp_path / "bad.j2"
    path.write_text(f"---\nname: bad\nvariables: [prompt]\nparser: {value}\n---\nx\n")
    with pytest.raises(TemplateError) as err:
        load_template(path)
    assert str(path) in str(err.value) and "'parser'" in str(err.value) and message in str(err.value)
