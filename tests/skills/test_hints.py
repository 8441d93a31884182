"""Routing hints in SKILL.md metadata become typed, validated Skill fields (issue 15)."""

from __future__ import annotations

from pathlib import Path

import pytest

from paxis_router.errors import SkillError
from paxis_router.skills.library import SkillLibrary
from paxis_router.skills.parse import parse_skill_dir


def write(root: Path, name: str, metadata: str, files: dict[str, str] | None = None) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "SKILL.md").write_text(
        f"---\nname: {name}\ndescription: Does {name}.\nmetadata:\n{metadata}---\n# Steps\n",
        encoding="utf-8",
    )
    for rel, text in (files or {}).items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text, encoding="utf-8")
    return folder


def test_every_hint_becomes_a_typed_field(tmp_path: Path) -> None:
    folder = write(
        tmp_path,
        "invoice",
        "  paxis-adapter: invoice-lora\n"
        "  paxis-tier: local:qwen-ft-v3\n"
        "  paxis-verifier: non_empty, json_schema\n"
        "  paxis-policy: policy.yaml\n"
        "  paxis-data-class: restricted\n",
        {"policy.yaml": "policy:\n  stop_when: {spent_over: '0.01'}\ntiers: []\n"},
    )
    skill = parse_skill_dir(folder, root=tmp_path).skill
    assert skill.pin_tier == "local:qwen-ft-v3"
    assert skill.verifiers == ({"kind": "non_empty"}, {"kind": "json_schema"})
    assert skill.policy == {"stop_when": {"spent_over": "0.01"}}  # the policy: section
    assert skill.data_class == "restricted"
    assert skill.metadata["paxis-adapter"] == "invoice-lora"  # the raw strings stay


def test_structured_verifier_specs_resolve_paths_inside_the_skill(tmp_path: Path) -> None:
    folder = write(
        tmp_path,
        "extract",
        "  paxis-verifier:\n"
        "    - non_empty\n"
        "    - {kind: json_schema, schema_file: schemas/out.json}\n"
        "    - {kind: script, script: scripts/check.py, wall_s: 5}\n"
        "    - {kind: any_of, verifiers: [arithmetic, {kind: regex, must_match: '\\d'}]}\n",
    )
    parsed = parse_skill_dir(folder, root=tmp_path)
    root = str(folder.resolve())
    assert parsed.skill.verifiers == (
        {"kind": "non_empty"},
        {"kind": "json_schema", "schema_file": f"{root}/schemas/out.json"},
        {"kind": "script", "script": f"{root}/scripts/check.py", "wall_s": 5, "skill": root},
        {
            "kind": "any_of",
            "verifiers": [{"kind": "arithmetic"}, {"kind": "regex", "must_match": "\\d"}],
        },
    )
    assert parsed.warnings == ()  # a structured hint is not "stringified"
    assert parsed.skill.metadata["paxis-verifier"].startswith('["non_empty", {"kind"')


def test_a_flow_string_keeps_metadata_spec_strict(tmp_path: Path) -> None:
    folder = write(
        tmp_path,
        "strict",
        "  paxis-verifier: '[{kind: json_schema, schema_file: s.json}]'\n"
        "  paxis-policy: '{on_exhausted: return_best}'\n",
    )
    skill = parse_skill_dir(folder, root=tmp_path).skill
    schema = str(folder.resolve() / "s.json")
    assert skill.verifiers == ({"kind": "json_schema", "schema_file": schema},)
    assert skill.policy == {"on_exhausted": "return_best"}


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ("  paxis-tier: ''\n", r"metadata\.paxis-tier: '' is not a tier name"),
        ("  paxis-tier: two words\n", r"metadata\.paxis-tier: 'two words' is not a tier name"),
        ("  paxis-tier: [a]\n", r"metadata\.paxis-tier: \['a'\] is not a tier name"),
        ("  paxis-data-class: Top Secret\n", r"metadata\.paxis-data-class: 'Top Secret' is not"),
        ("  paxis-verifier: Non-Empty\n", r"metadata\.paxis-verifier\[0\]: kind 'Non-Empty'"),
        ("  paxis-verifier: ','\n", r"metadata\.paxis-verifier: lists no verifier"),
        ("  paxis-verifier: [{schema_file: x}]\n", r"paxis-verifier\[0\]: kind None is not"),
        ("  paxis-verifier: [3]\n", r"paxis-verifier\[0\]: 3 is neither a verifier kind"),
        ("  paxis-verifier: '[unclosed'\n", r"metadata\.paxis-verifier: not valid YAML"),
        (
            "  paxis-verifier: [{kind: json_schema, schema_file: ../../etc/passwd}]\n",
            r"paxis-verifier\[0\]\.schema_file: '\.\./\.\./etc/passwd' is outside the skill",
        ),
        ("  paxis-policy: missing.yaml\n", r"metadata\.paxis-policy: cannot read 'missing.yaml'"),
        ("  paxis-policy: [1, 2]\n", r"metadata\.paxis-policy: must be a YAML file in the skill"),
    ],
)
def test_malformed_hints_name_the_file_and_field(
    tmp_path: Path, metadata: str, message: str
) -> None:
    folder = write(tmp_path, "bad", metadata)
    with pytest.raises(SkillError, match=message) as info:
        parse_skill_dir(folder, root=tmp_path)
    assert str(info.value).startswith(str(folder / "SKILL.md"))


def test_a_policy_file_that_is_not_yaml_or_not_a_mapping(tmp_path: Path) -> None:
    bad_yaml = write(tmp_path, "a", "  paxis-policy: p.yaml\n", {"p.yaml": "stop_when: [\n"})
    with pytest.raises(SkillError, match=r"paxis-policy: 'p.yaml' is not a valid YAML file"):
        parse_skill_dir(bad_yaml, root=tmp_path)
    scalar = write(tmp_path, "b", "  paxis-policy: p.yaml\n", {"p.yaml": "just text\n"})
    with pytest.raises(SkillError, match=r"paxis-policy: must be a YAML file in the skill"):
        parse_skill_dir(scalar, root=tmp_path)
    section = write(
        tmp_path, "c", "  paxis-policy: p.yaml\n", {"p.yaml": "escalate_when: verdict_failed\n"}
    )
    assert parse_skill_dir(section, root=tmp_path).skill.policy == {
        "escalate_when": "verdict_failed"
    }


def test_inline_policy_and_hints_survive_save_and_load(tmp_path: Path) -> None:
    write(
        tmp_path / "src",
        "tuned",
        "  paxis-tier: frontier:gpt-4o\n"
        "  paxis-policy: {on_exhausted: return_best}\n"
        "  paxis-verifier: arithmetic\n"
        "  paxis-data-class: internal\n",
    )
    lib = SkillLibrary.from_dir(tmp_path / "src")
    lib.save(tmp_path / "saved")
    skill = SkillLibrary.load(tmp_path / "saved").get("tuned")
    assert (skill.pin_tier, skill.verifiers, skill.policy, skill.data_class) == (
        "frontier:gpt-4o",
        ({"kind": "arithmetic"},),
        {"on_exhausted": "return_best"},
        "internal",
    )
    assert skill == lib.get("tuned")


def test_a_lenient_library_skips_a_skill_with_a_bad_hint(tmp_path: Path) -> None:
    write(tmp_path, "good", "  paxis-tier: local\n")
    write(tmp_path, "bad", "  paxis-data-class: 42\n")
    with pytest.raises(SkillError, match=r"bad/SKILL\.md: metadata\.paxis-data-class"):
        SkillLibrary.from_dir(tmp_path)
    lib = SkillLibrary.from_dir(tmp_path, strict=False)
    assert [s.id for s in lib] == ["good"]
    [(path, error)] = lib.errors.items()
    assert path.endswith("bad/SKILL.md") and "paxis-data-class: 42" in error
