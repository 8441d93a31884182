"""SKILL.md parsing: the real corpus, the bundled skills, and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from paxis_router.errors import SkillError
from paxis_router.skills.library import SkillLibrary
from paxis_router.skills.parse import find_skill_dirs, parse_skill_dir

# The shared data sits beside the main checkout (``../shared``); a git worktree is one level
# further down (``../../shared`` from it).
CORPUS = next(
    (
        root / "shared" / "data" / "skills-corpus"
        for root in Path(__file__).resolve().parents[3:5]
        if (root / "shared" / "data" / "skills-corpus").is_dir()
    ),
    Path(__file__).resolve().parents[3] / "shared" / "data" / "skills-corpus",
)
BUNDLED = Path(__file__).resolve().parents[2] / "skills"
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason="skills corpus not present")


def write_skill(root: Path, folder: str, text: str | bytes) -> Path:
    path = root / folder
    path.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        (path / "SKILL.md").write_bytes(text)
    else:
        (path / "SKILL.md").write_text(text, encoding="utf-8")
    return path


@needs_corpus
def test_every_corpus_skill_loads_and_warnings_are_counted() -> None:
    folders = list(find_skill_dirs(CORPUS))
    parsed = [parse_skill_dir(f, root=CORPUS) for f in folders]
    assert len(parsed) == 934
    ids = {p.skill.id for p in parsed}
    assert "anthropics__skills/mcp-builder" in ids
    assert len(ids) == 934
    with_warnings = [p for p in parsed if p.warnings]
    # The corpus README: 126 non-spec keys, 29 charset breaks, 107 names != folder, 2 long
    # descriptions; these overlap, so the count of skills with any warning lies in between.
    assert 126 <= len(with_warnings) < 934
    differs = sum(any("differs from the folder" in w for w in p.warnings) for p in parsed)
    assert differs == 107
    long_desc = sum(any("over the spec's 1024" in w for w in p.warnings) for p in parsed)
    assert long_desc == 2


def test_bundled_skills_are_valid_without_warnings() -> None:
    parsed = [parse_skill_dir(f, root=BUNDLED) for f in find_skill_dirs(BUNDLED)]
    names = {p.skill.id for p in parsed}
    assert {"math-word-problems", "structured-extraction", "classification", "summarization"} <= (
        names
    )
    assert all(p.warnings == () for p in parsed)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            "A shop sells pens at 3 dollars each; how much do 12 pens cost in total?",
            "math-word-problems",
        ),
        (
            "Extract the invoice number, date and amount from this email as JSON",
            "structured-extraction",
        ),
        (
            "Label each support ticket with one category: billing, bug or feature request",
            "classification",
        ),
        ("Give me a short recap of this meeting transcript with action items", "summarization"),
    ],
)
def test_bundled_skill_descriptions_are_findable(query: str, expected: str) -> None:
    lib = SkillLibrary.from_dir(BUNDLED)
    assert lib.select(query, k=1)[0].skill.id == expected


def test_spec_fields_are_parsed(tmp_path: Path) -> None:
    folder = write_skill(
        tmp_path,
        "pdf-tools",
        "---\nname: pdf-tools\ndescription: Split and merge PDFs.\nlicense: MIT\n"
        "compatibility: needs qpdf\nallowed-tools: Bash Read\n"
        "metadata:\n  paxis-verifier: json_schema\n  version: 2\n---\n# Body\ntext\n",
    )
    (folder / "scripts").mkdir()
    (folder / "scripts" / "split.py").write_text("print(1)\n")
    (folder / "references" / "deep").mkdir(parents=True)
    (folder / "references" / "deep" / "notes.md").write_text("x")
    parsed = parse_skill_dir(folder, root=tmp_path)
    skill = parsed.skill
    assert (skill.license, skill.compatibility) == ("MIT", "needs qpdf")
    assert skill.allowed_tools == ("Bash", "Read")
    assert dict(skill.metadata) == {"paxis-verifier": "json_schema", "version": "2"}
    assert skill.scripts == ("scripts/split.py",)
    assert skill.references == ("references/deep/notes.md",)
    assert skill.assets == ()
    assert parsed.body == "# Body\ntext\n"
    assert skill.body() == "# Body\ntext\n"
    assert parsed.warnings == ("metadata.version is not a string; stringified",)


def test_lenient_name_problems_load_with_warnings(tmp_path: Path) -> None:
    folder = write_skill(
        tmp_path, "red-team", "---\nname: Red Team Tools\ndescription: Pentest.\nauthor: x\n---\n"
    )
    parsed = parse_skill_dir(folder, root=tmp_path)
    assert parsed.skill.name == "Red Team Tools"
    assert any("breaks the spec" in w for w in parsed.warnings)
    assert any("differs from the folder name 'red-team'" in w for w in parsed.warnings)
    assert any("non-spec frontmatter keys ignored: author" in w for w in parsed.warnings)


def test_missing_name_uses_the_folder_with_a_warning(tmp_path: Path) -> None:
    folder = write_skill(tmp_path, "csv-merge", "---\ndescription: Merge CSV files.\n---\nbody")
    parsed = parse_skill_dir(folder, root=tmp_path)
    assert parsed.skill.name == "csv-merge"
    assert parsed.warnings == ("frontmatter has no 'name'; using the folder name 'csv-merge'",)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("---\nname: x\ndescription: [unclosed\n---\nbody", "not valid YAML"),
        ("---\nname: x\n---\nbody", "no 'description'"),
        ("---\nname: x\ndescription: '   '\n---\nbody", "no 'description'"),
        ("---\nname: x\ndescription: 42\n---\nbody", "no 'description'"),
        ("# just markdown, no frontmatter\n", "no YAML frontmatter"),
        ("---\n- a\n- b\n---\nbody", "must be a YAML mapping"),
    ],
)
def test_strict_failures_name_the_path(tmp_path: Path, text: str, match: str) -> None:
    folder = write_skill(tmp_path, "bad", text)
    with pytest.raises(SkillError, match=match) as info:
        parse_skill_dir(folder, root=tmp_path)
    assert info.value.path == str(folder / "SKILL.md")
    assert str(folder / "SKILL.md") in str(info.value)


def test_non_utf8_is_an_error_naming_the_path(tmp_path: Path) -> None:
    folder = write_skill(
        tmp_path, "latin", "---\nname: latin\ndescription: café\n---\n".encode("latin-1")
    )
    with pytest.raises(SkillError, match=r"latin/SKILL.md: SKILL.md is not valid UTF-8"):
        parse_skill_dir(folder, root=tmp_path)


def test_a_10mb_body_is_refused_and_a_bigger_limit_accepts_it(tmp_path: Path) -> None:
    body = ("lorem ipsum dolor sit amet " * 400_000)[: 10 * 1024 * 1024]
    folder = write_skill(tmp_path, "huge", f"---\nname: huge\ndescription: Big.\n---\n{body}")
    with pytest.raises(SkillError, match=r"over the 1,048,576-byte limit; move bulk text"):
        parse_skill_dir(folder, root=tmp_path)
    with pytest.raises(SkillError, match=r"huge/SKILL\.md"):
        SkillLibrary.from_dir(tmp_path)
    parsed = parse_skill_dir(folder, root=tmp_path, max_bytes=11 * 1024 * 1024)
    assert len(parsed.body) == len(body)
    # The library indexes only the first body_max_chars of it: the index stays small.
    lib = SkillLibrary(body_max_chars=1000)
    lib.add(parsed.skill, body=parsed.body)
    assert lib.index.nbytes < 100_000


def test_bom_and_crlf_are_accepted(tmp_path: Path) -> None:
    text = "\ufeff---\r\nname: win\r\ndescription: Made on Windows.\r\n---\r\nbody\r\n"
    folder = write_skill(tmp_path, "win", text.encode("utf-8"))
    parsed = parse_skill_dir(folder, root=tmp_path)
    assert (parsed.skill.name, parsed.skill.description) == ("win", "Made on Windows.")


def test_discovery_skips_hidden_and_nested_skills(tmp_path: Path) -> None:
    write_skill(tmp_path, "owner__repo/alpha", "---\nname: alpha\ndescription: A.\n---\n")
    write_skill(
        tmp_path, "owner__repo/alpha/assets/template", "---\nname: t\ndescription: T.\n---\n"
    )
    write_skill(tmp_path, ".git/hidden", "---\nname: hidden\ndescription: H.\n---\n")
    ids = [f.relative_to(tmp_path).as_posix() for f in find_skill_dirs(tmp_path)]
    assert ids == ["owner__repo/alpha"]
    with pytest.raises(SkillError, match="not a directory of skills"):
        list(find_skill_dirs(tmp_path / "missing"))
