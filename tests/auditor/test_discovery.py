"""File discovery: languages, .gitignore, skipped folders, include/exclude, links."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from auditor.errors import UserError
from auditor.static.discovery import discover
from auditor.static.languages import language_of
from tests.auditor.conftest import git, write


@pytest.mark.parametrize("name, language", [
    ("a.py", "Python"), ("a.pyi", "Python"), ("a.c", "C"), ("a.h", "C/C++ header"), ("a.C", "C++"),
    ("a.cc", "C++"), ("a.cpp", "C++"), ("a.cxx", "C++"), ("a.hh", "C++"), ("a.hpp", "C++"),
    ("a.hxx", "C++"), ("a.ipp", "C++"), ("a.inl", "C++"), ("a.icc", "C++"), ("a.tpp", "C++"),
    ("a.cu", "CUDA"), ("a.cuh", "CUDA"), ("a.hip", "HIP"), ("a.sycl", "SYCL"), ("a.CPP", "C++"),
    ("a.txt", None), ("Makefile", None), ("a.pyc", None),
])
def test_languages(name: str, language: str | None) -> None:
    assert language_of(name) == language


def _rels(found) -> set[str]:
    return {c.rel for c in found.candidates}


def test_walk_skips_default_folders_and_reports_them(tmp_path: Path, config) -> None:
    write(tmp_path, "src/a.py", "x = 1\n")
    write(tmp_path, "build/gen.cpp", "int f();\n")
    write(tmp_path, "extern/vendored-lib/lib.c", "int g();\n")
    write(tmp_path, "pkg/vendored-meson/m.py", "y = 2\n")
    write(tmp_path, "README.md", "# readme\n")
    found = discover([tmp_path], config)
    assert _rels(found) == {"src/a.py"}
    assert set(found.pruned_dirs) == {"build", "extern", "pkg/vendored-meson"}
    assert found.methods == {"walk"}
    everything = discover([tmp_path], replace(config, skip_dirs=()))
    assert _rels(everything) == {"src/a.py", "build/gen.cpp", "extern/vendored-lib/lib.c", "pkg/vendored-meson/m.py"}


def test_git_work_tree_honours_gitignore(tmp_path: Path, config) -> None:
    write(tmp_path, ".gitignore", "generated/\n*_pb2.py\n")
    write(tmp_path, "keep.py", "x = 1\n")
    write(tmp_path, "untracked.cu", "__global__ void k() {}\n")
    write(tmp_path, "msg_pb2.py", "x = 1\n")
    write(tmp_path, "generated/big.cpp", "int f();\n")
    write(tmp_path, "third_party/lib.cpp", "int g();\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "keep.py", ".gitignore", "third_party/lib.cpp")
    found = discover([tmp_path], config)
    assert found.methods == {"git"}
    assert _rels(found) == {"keep.py", "untracked.cu"}
    assert found.pruned_dirs == ["third_party"]
    # A folder that git ignores is still audited when the user names it.
    assert _rels(discover([tmp_path / "generated"], config)) == {"big.cpp"}


def test_include_and_exclude_patterns_are_relative_to_the_config(tmp_path: Path, config) -> None:
    for rel in ("src/a.py", "src/b.cpp", "tests/test_a.py", "src/gen/x_generated.cpp"):
        write(tmp_path, rel, "int x;\n" if rel.endswith(".cpp") else "x = 1\n")
    cfg = replace(config, base_dir=str(tmp_path), exclude=("tests/", "*_generated.cpp"))
    assert _rels(discover([tmp_path], cfg)) == {"src/a.py", "src/b.cpp"}
    cfg = replace(config, base_dir=str(tmp_path), include=("*.cpp",))
    assert _rels(discover([tmp_path], cfg)) == {"src/b.cpp", "src/gen/x_generated.cpp"}


def test_several_paths_share_one_root_and_files_are_not_repeated(tmp_path: Path, config) -> None:
    a = write(tmp_path, "one/a.py", "x = 1\n")
    write(tmp_path, "two/b.cc", "int f() { return 1; }\n")
    found = discover([tmp_path / "one", tmp_path / "two", a], config)
    assert found.root == tmp_path
    assert sorted(_rels(found)) == ["one/a.py", "two/b.cc"]


def test_symlink_loop_is_reported_not_followed_forever(tmp_path: Path, config) -> None:
    write(tmp_path, "pkg/a.py", "x = 1\n")
    os.symlink("..", tmp_path / "pkg" / "loop")
    os.symlink("self.py", tmp_path / "pkg" / "self.py")
    found = discover([tmp_path], config)
    assert "pkg/a.py" in _rels(found)
    assert any(s.rel == "pkg/loop/" and "symbolic link loop" in s.reason for s in found.skipped)


def test_missing_path_is_a_user_error(tmp_path: Path, config) -> None:
    with pytest.raises(UserError, match="does not exist"):
        discover([tmp_path / "nope"], config)


def test_explicit_file_of_unknown_type_is_listed(tmp_path: Path, config) -> None:
    notes = write(tmp_path, "notes.txt", "hello\n")
    found = discover([notes], config)
    assert not found.candidates
    assert found.skipped[0].reason.startswith("not a supported source file")
