"""Skill bodies: read once into a bounded cache, re-read when the file changes, never YAML-parsed
again, rendered for the prompt without blocking the event loop."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from paxis_router import ChatRequest, Router
from paxis_router.errors import SkillError
from paxis_router.skills.bodies import BodyCache, BodyLoader
from paxis_router.skills.library import SkillLibrary
from paxis_router.skills.model import Skill, SkillMatch
from paxis_router.skills.parse import parse_skill_dir
from paxis_router.skills.prompt import arender_instructions, render_instructions
from paxis_router.testing import FakeWorker

SPECS = {
    "csv-merge": "Merge and clean CSV spreadsheets.",
    "pdf-split": "Split PDF documents into pages.",
    "sql-tuning": "Speed up slow SQL queries with indexes.",
    "email-digest": "Summarise an email thread into a digest.",
}


def make_skills(root: Path) -> Path:
    for name, description in SPECS.items():
        folder = root / "team" / name
        folder.mkdir(parents=True)
        (folder / "SKILL.md").write_text(
            f"---\nname: {name}\ndescription: {description}\n---\n# {name}\nSteps for {name}.\n",
            encoding="utf-8",
        )
    return root


def skill_file(root: Path, name: str) -> Path:
    return root / "team" / name / "SKILL.md"


def test_a_library_from_a_folder_renders_its_bodies_without_reading_a_file(tmp_path: Path) -> None:
    lib = SkillLibrary.from_dir(make_skills(tmp_path))
    assert len(lib.bodies) == 4 and lib.bodies.misses == 0
    matches = lib.select("merge csv spreadsheets and split pdf pages and slow sql", k=3)
    assert len(matches) == 3
    text = render_instructions([m.skill for m in matches])
    assert "Steps for csv-merge." in text and "## Skill: sql-tuning" in text
    assert lib.bodies.misses == 0  # every body came from the cache


def test_an_edited_skill_md_is_read_again(tmp_path: Path) -> None:
    root = make_skills(tmp_path)
    lib = SkillLibrary.from_dir(root)
    skill = lib.get("csv-merge")
    assert skill.body() == "# csv-merge\nSteps for csv-merge.\n"
    path = skill_file(root, "csv-merge")
    path.write_text("---\nname: csv-merge\ndescription: x\n---\nNew steps, longer.\n")
    assert skill.body() == "New steps, longer.\n"
    assert lib.bodies.misses == 1
    # Same size, new contents: the mtime tells.
    path.write_text("---\nname: csv-merge\ndescription: x\n---\nNew steps, LONGER.\n")
    stamp = path.stat()
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 5_000_000_000))
    assert skill.body() == "New steps, LONGER.\n"
    assert skill.body() == "New steps, LONGER.\n"
    assert lib.bodies.misses == 2


def test_bodies_are_found_without_parsing_the_yaml_again(tmp_path: Path) -> None:
    root = make_skills(tmp_path)
    lib = SkillLibrary.from_dir(root, bodies=BodyCache(max_entries=0))  # cache nothing
    path = skill_file(root, "pdf-split")
    path.write_text("---\nname: [unclosed\n---\nStill readable.\n", encoding="utf-8")
    assert lib.get("pdf-split").body() == "Still readable.\n"
    path.write_text("no frontmatter at all\n", encoding="utf-8")
    with pytest.raises(SkillError, match=r"pdf-split/SKILL\.md: no YAML frontmatter"):
        lib.get("pdf-split").body()
    path.unlink()
    with pytest.raises(SkillError, match=r"pdf-split/SKILL\.md: cannot read SKILL.md"):
        lib.get("pdf-split").body()


def test_the_cache_is_bounded_least_recently_used_out(tmp_path: Path) -> None:
    root = make_skills(tmp_path)
    longest = max(len(f"# {name}\nSteps for {name}.\n") for name in SPECS)
    cache = BodyCache(max_bytes=2 * longest + 1)  # room for two bodies, not three
    lib = SkillLibrary.from_dir(root, bodies=cache)
    assert len(cache) == 2  # the last two read while indexing
    kept = {p for p in SPECS if cache.peek(skill_file(root, p)) is not None}
    assert len(kept) == 2
    evicted = sorted(set(SPECS) - kept)[0]
    assert lib.get(evicted).body().startswith(f"# {evicted}")
    assert cache.misses == 1 and len(cache) == 2
    assert (
        BodyCache(max_entries=1).loader(skill_file(root, "sql-tuning"))().endswith("sql-tuning.\n")
    )


def test_without_change_checks_the_cache_is_trusted_until_cleared(tmp_path: Path) -> None:
    root = make_skills(tmp_path)
    lib = SkillLibrary.from_dir(root, bodies=BodyCache(check_changes=False))
    skill_file(root, "csv-merge").write_text("---\nname: a\ndescription: b\n---\nEdited.\n")
    assert lib.get("csv-merge").body().startswith("# csv-merge")
    lib.bodies.clear()
    assert lib.get("csv-merge").body() == "Edited.\n"


def test_skills_parsed_alone_read_their_file_on_each_call(tmp_path: Path) -> None:
    root = make_skills(tmp_path)
    skill = parse_skill_dir(root / "team" / "csv-merge", root=root).skill
    skill_file(root, "csv-merge").write_text("---\nname: a\ndescription: b\n---\nFresh.\n")
    assert skill.body() == "Fresh.\n"
    lib = SkillLibrary([skill])  # the library reads it through its own cache from now on
    assert lib.get("team/csv-merge").body() == "Fresh.\n"
    assert lib.bodies.misses == 1
    assert lib.get("team/csv-merge").body() == "Fresh.\n" and lib.bodies.misses == 1


def test_abody_reads_a_missing_body_in_a_worker_thread(tmp_path: Path) -> None:
    seen: list[str] = []

    def slow_loader() -> str:
        seen.append(threading.current_thread().name)
        return "read elsewhere"

    custom = Skill(id="c", name="c", description="C.", load_body=slow_loader)
    assert asyncio.run(custom.abody()) == "read elsewhere"
    assert seen and seen[0] != threading.main_thread().name
    assert asyncio.run(Skill(id="n", name="n", description="N.").abody()) == ""

    root = make_skills(tmp_path)
    lib = SkillLibrary.from_dir(root, bodies=BodyCache(max_entries=1))
    cold = lib.get("csv-merge")
    assert isinstance(cold.load_body, BodyLoader) and cold.load_body.cached() is None
    assert asyncio.run(cold.abody()) == "# csv-merge\nSteps for csv-merge.\n"
    misses = lib.bodies.misses
    assert asyncio.run(cold.abody()).startswith("# csv-merge") and lib.bodies.misses == misses


def test_arender_equals_render_and_reads_cold_bodies(tmp_path: Path) -> None:
    root = make_skills(tmp_path)
    lib = SkillLibrary.from_dir(root)
    lib.bodies.clear()
    matches = lib.select("split pdf pages, merge csv", k=2)
    text = asyncio.run(arender_instructions([m.skill for m in matches]))
    assert lib.bodies.misses == 2
    assert text == render_instructions([m.skill for m in matches]) and lib.bodies.misses == 2
    assert asyncio.run(arender_instructions([])) == render_instructions([]) == ""


def test_render_instructions_is_the_text_the_router_puts_in_the_prompt(tmp_path: Path) -> None:
    lib = SkillLibrary.from_dir(make_skills(tmp_path))
    worker = FakeWorker(["done"])
    router = Router(tiers=[worker], skills=lib, skills_k=2)
    query = "summarise this email thread into a digest"
    router.route_sync(ChatRequest.from_text(query))
    expected = render_instructions([m.skill for m in lib.select(query, k=2)])
    assert worker.calls[0].messages[0].content == expected


def test_preload_bodies_warms_a_loaded_library(tmp_path: Path) -> None:
    lib = SkillLibrary.from_dir(make_skills(tmp_path / "src"))
    lib.save(tmp_path / "saved")
    loaded = SkillLibrary.load(tmp_path / "saved")
    assert len(loaded.bodies) == 0
    assert asyncio.run(loaded.apreload_bodies()) == 4
    match = loaded.select("slow sql queries", k=1)[0]
    assert "Steps for sql-tuning." in render_instructions([match.skill])
    assert loaded.bodies.misses == 4
    assert loaded.preload_bodies(["team/csv-merge"]) == 4 and loaded.bodies.misses == 4


def test_a_skill_match_body_list_round_trips_through_the_cache_types() -> None:
    # SkillMatch holds the library's Skill: equality ignores the body loader.
    a = Skill(id="x", name="x", description="X.", load_body=lambda: "one")
    b = Skill(id="x", name="x", description="X.", load_body=lambda: "two")
    assert a == b and SkillMatch(a, 1.0, ()) == SkillMatch(b, 1.0, ())
