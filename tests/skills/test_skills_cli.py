"""`paxis skills validate|search|eval`, text and --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paxis_router.cli import main

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


def test_validate_ok_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_dir(tmp_path)
    (root / "other__repo" / "csv-clean" / "SKILL.md").write_text(
        "---\nname: CSV Clean\ndescription: Clean CSVs.\n---\n", encoding="utf-8"
    )
    assert main(["skills", "validate", str(root), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["ok"], out["skills"], out["valid"], out["errors"]) == (True, 3, 3, [])
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
    assert out.strip().endswith("3 skill(s), 2 error(s), 0 warning(s) in 0 skill(s)")


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


def test_search_json_ids_are_folder_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_dir(tmp_path)
    status = main(
        ["skills", "search", "--dir", str(root), "--k", "2", "--json", "my SQL query is slow"]
    )
    assert status == 0
    out = json.loads(capsys.readouterr().out)
    assert out[0]["id"] == "acme__skills/sql-tuning"
    assert set(out[0]) == {"id", "score"} and out[0]["score"] > 0
    assert len(out) <= 2


def test_search_text_and_no_match(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_dir(tmp_path)
    assert main(["skills", "search", "--dir", str(root), "split this pdf"]) == 0
    assert capsys.readouterr().out.startswith("1. acme__skills/pdf-split  ")
    assert main(["skills", "search", "--dir", str(root), "--no-body", "the of and"]) == 0
    assert capsys.readouterr().out == "no skill matched\n"


def test_eval_json_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_dir(tmp_path)
    queries = tmp_path / "q.jsonl"
    queries.write_text(
        '{"query": "add an index to speed up my SQL", "skill": "acme__skills/sql-tuning"}\n'
        '{"query": "dedupe rows in this csv", "skill": "other__repo/csv-clean"}\n\n'
        '{"query": "something unrelated entirely", "skill": "acme__skills/pdf-split"}\n',
        encoding="utf-8",
    )
    assert main(["skills", "eval", "--dir", str(root), str(queries), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"recall_at_1": 2 / 3, "recall_at_5": 2 / 3, "mrr": 2 / 3, "n": 3}
    assert main(["skills", "eval", "--dir", str(root), str(queries)]) == 0
    assert capsys.readouterr().out == "n=3  recall@1=0.667  recall@5=0.667  MRR=0.667\n"


def test_eval_bad_queries_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    queries = tmp_path / "q.jsonl"
    queries.write_text('{"query": "x"}\n', encoding="utf-8")
    assert main(["skills", "eval", "--dir", str(BUNDLED), str(queries)]) == 2
    assert 'line 1: needs {"query": <text>, "skill": <skill id>}' in capsys.readouterr().err
