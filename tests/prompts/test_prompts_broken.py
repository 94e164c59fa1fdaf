"""One broken template on the search path does not break ``rlaif prompts list`` (the others are
listed, the broken ones named, exit status 2) nor the known-names hint of an unknown-name error."""

from __future__ import annotations

import pytest

from rlaif.cli import main
from rlaif.errors import TemplateError
from rlaif.prompts import list_templates, load_template, scan_templates


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    (tmp_path / "good.j2").write_text("---\nname: my_good\nvariables: [x]\n---\nX={{ x }}\n")
    (tmp_path / "bad_yaml.j2").write_text("---\nname: [unclosed\n---\nx\n")
    (tmp_path / "bad_body.j2").write_text("---\nname: bad_body\n---\n{% if %}\n")
    monkeypatch.setenv("RLAIF_PROMPTS_PATH", str(tmp_path))
    return tmp_path


def test_scan_lists_the_good_and_names_each_broken_file(user_dir):
    templates, broken = scan_templates()
    names = {t.name for t in templates}
    assert {"my_good", "pairwise", "conversation_transcript"} <= names and "bad_body" not in names
    messages = sorted(str(e) for e in broken)
    assert len(messages) == 2
    assert messages[0].startswith(f"{user_dir / 'bad_body.j2'}:4: template syntax error")
    assert (
        messages[1]
        == f"{user_dir / 'bad_yaml.j2'}:2: front matter is not valid YAML (expected ',' or ']', but got '<stream end>')"
    )
    with pytest.raises(TemplateError, match="bad_"):  # the strict listing still refuses
        list_templates()


def test_cli_list_shows_the_others_and_exits_2(user_dir, capsys):
    assert main(["prompts", "list"]) == 2
    captured = capsys.readouterr()
    listed = {line.split()[0] for line in captured.out.splitlines()[1:] if not line.startswith(" ")}
    assert {"my_good", "pairwise", "self_rewarding_rubric", "data"} <= listed
    errors = captured.err.strip().splitlines()
    assert len(errors) == 2 and all(line.startswith("error: ") for line in errors), captured.err
    assert f"{user_dir / 'bad_body.j2'}:4: template syntax error" in captured.err
    assert f"{user_dir / 'bad_yaml.j2'}:2: front matter is not valid YAML" in captured.err


def test_good_templates_still_load_by_name_and_stem(user_dir):
    assert load_template("my_good").render(x=1) == "X=1"  # by front-matter name, next to broken files
    assert load_template("good").render(x=2) == "X=2"
    assert load_template("pairwise").path.name == "pairwise.j2"


def test_an_unknown_name_lists_the_known_and_names_the_broken(user_dir):
    with pytest.raises(TemplateError, match=r"no template named 'nope' \(known: .*my_good.*pairwise") as info:
        load_template("nope")
    message = str(info.value)
    assert "bad_body" not in message.split("(known: ")[1].split(")")[0]  # its body does not compile
    assert "2 file(s) could not be loaded, the first: " in message and "\n" not in message


def test_a_broken_copy_found_by_stem_reports_its_error(user_dir):
    (user_dir / "pairwise.j2").write_text("---\nname: pairwise\nparsr: score\n---\nx\n")
    with pytest.raises(TemplateError, match=r"pairwise.j2: front matter field 'parsr'"):
        load_template("pairwise")  # the user's copy shadows the shipped one even while broken


def test_without_broken_templates_list_exits_0(capsys):
    assert main(["prompts", "list"]) == 0
    assert capsys.readouterr().err == ""
