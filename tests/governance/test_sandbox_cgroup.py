"""Where the sandbox makes its cgroup, read from mountinfo and /proc/self/cgroup texts against a
folder tree laid out like cgroupfs (the real thing is used by test_sandbox_isolation)."""

from __future__ import annotations

from pathlib import Path

import pytest

from paxis_router.governance._sandbox_cgroup import (
    CgroupSite,
    parse_mountinfo,
    parse_proc_cgroup,
    site_from,
)

V2_MOUNT = "30 23 0:26 / {point} rw,nosuid,nodev - cgroup2 cgroup2 rw,nsdelegate"
V1_MEMORY = "40 23 0:30 {root} {point} rw - cgroup cgroup rw,memory"
V1_PIDS = "41 23 0:31 / {point} rw - cgroup cgroup rw,pids"


def tree(base: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = base / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return base


def test_v2_uses_the_nearest_folder_that_delegates_memory_and_pids(tmp_path: Path) -> None:
    root = tree(
        tmp_path / "cg",
        {
            "cgroup.controllers": "cpu io memory pids",
            "cgroup.subtree_control": "cpu memory pids",
            "system.slice/cgroup.subtree_control": "memory pids",
            "system.slice/paxis.service/cgroup.subtree_control": "",
        },
    )
    site, why = site_from(V2_MOUNT.format(point=root), "0::/system.slice/paxis.service\n")
    assert (site, why) == (CgroupSite(2, root / "system.slice", root / "system.slice"), "")


def test_v2_without_a_memory_controller_falls_back_to_v1(tmp_path: Path) -> None:
    unified = tree(tmp_path / "unified", {"cgroup.controllers": "hugetlb"})
    memory = tree(tmp_path / "memory", {"process_api/abc/memory.limit_in_bytes": "0"})
    pids = tree(tmp_path / "pids", {"pids.max": "max"})
    mountinfo = "\n".join(
        [
            V2_MOUNT.format(point=unified),
            V1_MEMORY.format(root="/", point=memory),
            V1_PIDS.format(point=pids),
        ]
    )
    site, why = site_from(mountinfo, "0::/\n8:pids:/\n4:memory:/process_api/abc\n")
    assert site == CgroupSite(1, memory / "process_api" / "abc", pids)
    assert why == ""
    assert site.label == "cgroup v1"


def test_a_container_cgroup_with_processes_of_its_own_is_not_used(tmp_path: Path) -> None:
    # In its own cgroup namespace a container sees itself at "/"; controllers cannot be
    # delegated from a cgroup that holds processes, and we never enable them ourselves.
    root = tree(
        tmp_path / "cg", {"cgroup.controllers": "memory pids", "cgroup.subtree_control": ""}
    )
    site, why = site_from(V2_MOUNT.format(point=root), "0::/\n")
    assert site is None
    assert "no writable cgroup v2 folder delegating memory and pids" in why
    assert "no writable cgroup v1 memory hierarchy" in why


@pytest.mark.parametrize(
    ("membership", "message"),
    [
        ("0::/../../outside\n", "outside the mounted hierarchy"),
        ("", "no cgroup v2 hierarchy"),
    ],
)
def test_an_unusable_membership_is_explained(tmp_path: Path, membership: str, message: str) -> None:
    root = tree(tmp_path / "cg", {"cgroup.controllers": "memory pids"})
    site, why = site_from(V2_MOUNT.format(point=root), membership)
    assert site is None
    assert message in why


def test_mountinfo_and_proc_cgroup_parsing() -> None:
    text = "\n".join(
        [
            r"30 23 0:26 / /sys/fs/cgroup\040x rw - cgroup2 cgroup2 rw",
            "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw",
            "40 23 0:30 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory",
        ]
    )
    mounts = parse_mountinfo(text)
    assert [(m.fstype, str(m.point), m.root) for m in mounts] == [
        ("cgroup2", "/sys/fs/cgroup x", "/"),
        ("cgroup", "/sys/fs/cgroup/memory", "/docker/abc"),
    ]
    assert "memory" in mounts[1].options
    assert parse_proc_cgroup("0::/a\n2:cpu,cpuacct:/b\n4:memory:/c\n") == {
        "": "/a",
        "cpu": "/b",
        "cpuacct": "/b",
        "memory": "/c",
    }


def test_a_v1_mount_rooted_below_the_hierarchy_root_is_followed(tmp_path: Path) -> None:
    memory = tree(tmp_path / "memory", {"sub/memory.limit_in_bytes": "0"})
    site, _ = site_from(
        V1_MEMORY.format(root="/docker/abc", point=memory), "4:memory:/docker/abc/sub\n"
    )
    assert site == CgroupSite(1, memory / "sub", None)
