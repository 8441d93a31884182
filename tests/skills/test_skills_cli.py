"""`paxis skills validate|search|eval`, text and --json; the saved index; the DIR convention."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest

from paxis_router.cli import build_parser, main

BUNDLED = Path(__file__).resolve().parents[2] / "skills"


def make_dir(tmp_path: Path) -> Path:
    root = tmp_path / "lib"
    for owner, name, description in [
        ("acme__skills", "sql-tuning", "Read EXPLAIN plans and add indexes to slow SQL queries."),
        ("acme__skills", "pdf-split", "Split and merge PDF documents page by page."),
        ("other__repo", "csv-clean", "Clean messy CSV files, dedupe rows and fix dates."),
    ]:
        folder = root / owner / name
        folder.mkdir(parents=True)
        (folder / "SKILL.md").write_text(
            f"---\nname: {name}\ndescription: {description}\n---\n# Steps\n", encoding="utf-8"
        )
    return root


@pytest.fixture
def cache(tmp_path: Path) -> list[str]:
    return ["--cache-dir", str(tmp_path / "cache")]


def test_validate_ok_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_dir(tmp_path)
    (root / "other__repo" / "csv-clean" / "SKILL.md").write_text(
        "---\nname: CSV Clean\ndescription: Clean CSVs.\n---\n", encoding="utf-8"
    )
    assert main(["skills", "validate", str(root), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["ok"], out["skills"], out["valid"], out["errors"]) == (True, 3, 3, [])
    assert out["skills_with_warnings"] == 1
    assert {w["id"] for w in out["warnings"]} == {"other__repo/csv-clean"}


def test_validate_reports_every_error_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_dir(tmp_path)
    (root / "acme__skills" / "pdf-split" / "SKILL.md").write_text("---\nname: [x\n---\n")
    (root / "other__repo" / "csv-clean" / "SKILL.md").write_bytes(b"---\nname: \xff\n---\n")
    assert main(["skills", "validate", str(root)]) == 1
    out = capsys.readouterr().out
    assert "ERROR " in out and "pdf-split/SKILL.md: frontmatter is not valid YAML" in out
    assert "csv-clean/SKILL.md: SKILL.md is not valid UTF-8" in out
    assert out.strip().endswith("3 skill(s): 2 invalid, 0 with warnings (0 warning(s))")


def test_validate_flags_shared_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_dir(tmp_path)
    twin = root / "third__repo" / "sql-tuning"
    twin.mkdir(parents=True)
    (twin / "SKILL.md").write_text("---\nname: sql-tuning\ndescription: Tune SQL.\n---\n")
    assert main(["skills", "validate", str(root), "--json"]) == 0
    warnings = json.loads(capsys.readouterr().out)["warnings"]
    assert sorted(w["id"] for w in warnings) == [
        "acme__skills/sql-tuning",
        "third__repo/sql-tuning",
    ]


def test_search_json_ids_scores_and_words_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cache: list[str]
) -> None:
    root = make_dir(tmp_path)
    query = "my SQL Queries are slow"
    assert main(["skills", "search", str(root), query, "--k", "2", "--json", *cache]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[0]["id"] == "acme__skills/sql-tuning"
    assert set(out[0]) == {"id", "score", "matched"} and out[0]["score"] > 0
    assert out[0]["matched"] == ["SQL", "Queries", "slow"]  # not the stems sql/queri/slow
    assert len(out) <= 2


def test_search_text_and_no_match(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cache: list[str]
) -> None:
    root = make_dir(tmp_path)
    assert main(["skills", "search", str(root), "Splitting this PDF", *cache]) == 0
    out = capsys.readouterr().out
    assert out.startswith("1. acme__skills/pdf-split  ") and out.rstrip().endswith(
        "[Splitting, PDF]"
    )
    assert main(["skills", "search", str(root), "the of and", "--no-body", *cache]) == 0
    assert capsys.readouterr().out == "no skill matched\n"


def test_search_reuses_the_saved_index_until_the_folder_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    root = make_dir(tmp_path)
    cache = tmp_path / "cache"
    argv = ["-v", "skills", "search", str(root), "rows with dates", "--json", "--cache-dir"]
    with caplog.at_level("INFO", logger="paxis_router.skills.cache"):
        assert main([*argv, str(cache)]) == 0
        first = json.loads(capsys.readouterr().out)
        assert "indexed 3 skills, saved to" in caplog.text
        caplog.clear()
        assert main([*argv, str(cache)]) == 0
        assert json.loads(capsys.readouterr().out) == first
        assert "reusing the saved index" in caplog.text
        caplog.clear()
        skill = root / "acme__skills" / "pdf-split" / "SKILL.md"
        skill.write_text("---\nname: pdf-split\ndescription: Rows with dates in PDFs.\n---\n")
        stamp = skill.stat()
        os.utime(skill, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10**9))
        assert main([*argv, str(cache)]) == 0
        changed = json.loads(capsys.readouterr().out)
        assert "indexed 3 skills" in caplog.text
    assert changed[0]["id"] == "acme__skills/pdf-split" != first[0]["id"]
    assert len([p for p in next(cache.iterdir()).iterdir() if not p.name.startswith(".")]) == 1
    assert main(["skills", "search", str(root), "rows", "--no-cache", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["id"] == "acme__skills/pdf-split"


def test_one_bad_skill_is_skipped_with_a_note_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cache: list[str]
) -> None:
    root = make_dir(tmp_path)
    bad = root / "other__repo" / "no-description" / "SKILL.md"
    bad.parent.mkdir()
    bad.write_text("---\nname: no-description\n---\n# Steps\n", encoding="utf-8")
    assert main(["skills", "search", str(root), "slow sql", "--json", *cache]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)[0]["id"] == "acme__skills/sql-tuning"
    assert "note: 1 SKILL.md skipped (" in captured.err and str(bad) in captured.err
    assert captured.err.count("\n") == 1  # one line, however many skills are affected
    assert main(["skills", "search", str(root), "slow sql", "--json", *cache]) == 0
    assert str(bad) in capsys.readouterr().err  # the cached index remembers it
    assert main(["skills", "search", str(root), "slow sql", "--strict", *cache]) == 2
    assert "no-description/SKILL.md: frontmatter has no 'description'" in capsys.readouterr().err


def test_the_old_dir_option_still_works_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cache: list[str]
) -> None:
    root = make_dir(tmp_path)
    assert main(["skills", "search", "--dir", str(root), "split this pdf", *cache]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("1. acme__skills/pdf-split  ")
    assert "--dir is deprecated; write `paxis skills search DIR QUERY`" in captured.err
    with pytest.raises(SystemExit) as info:
        main(["skills", "search", str(root)])
    assert info.value.code == 2
    assert "missing an argument (paxis skills search DIR QUERY)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["skills", "search", "--dir", str(root), str(root), "pdf"])
    assert "give DIR once" in capsys.readouterr().err


def test_eval_json_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cache: list[str]
) -> None:
    root = make_dir(tmp_path)
    queries = tmp_path / "q.jsonl"
    queries.write_text(
        '{"query": "add an index to speed up my SQL", "skill": "acme__skills/sql-tuning"}\n'
        '{"query": "dedupe rows in this csv", "skill": "other__repo/csv-clean"}\n\n'
        '{"query": "something unrelated entirely", "skill": "acme__skills/pdf-split"}\n',
        encoding="utf-8",
    )
    assert main(["skills", "eval", str(root), str(queries), "--json", *cache]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"recall_at_1": 2 / 3, "recall_at_5": 2 / 3, "mrr": 2 / 3, "n": 3}
    assert main(["skills", "eval", "--dir", str(root), str(queries), *cache]) == 0
    assert capsys.readouterr().out == "n=3  recall@1=0.667  recall@5=0.667  MRR=0.667\n"


def test_eval_bad_queries_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cache: list[str]
) -> None:
    queries = tmp_path / "q.jsonl"
    queries.write_text('{"query": "x"}\n', encoding="utf-8")
    assert main(["skills", "eval", str(BUNDLED), str(queries), *cache]) == 2
    assert 'line 1: needs {"query": <text>, "skill": <skill id>}' in capsys.readouterr().err


def test_every_skills_option_has_help_and_every_subcommand_examples() -> None:
    parser = build_parser()
    skills = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[
        "skills"
    ]
    assert "examples:" in (skills.epilog or "")
    commands = next(a for a in skills._actions if isinstance(a, argparse._SubParsersAction))
    assert set(commands.choices) == {"validate", "search", "eval"}
    for name, sub in commands.choices.items():
        assert "examples:" in (sub.epilog or "") and f"paxis skills {name} " in (sub.epilog or "")
        for action in sub._actions:
            assert action.help, (name, action.dest)
    search_help = commands.choices["search"].format_help()
    assert "1 or more (default 5)" in search_help and "deprecated" in search_help
