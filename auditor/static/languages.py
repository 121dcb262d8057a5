"""Which source files hepaudit analyses, and in which language."""

from __future__ import annotations

from pathlib import PurePath

PYTHON = "Python"
C = "C"
C_OR_CPP = "C/C++ header"
CPP = "C++"
CUDA = "CUDA"
HIP = "HIP"
SYCL = "SYCL"

#: File suffix -> language. ``.C`` (capital, ROOT macros) is C++ while ``.c`` is C.
SUFFIX_LANGUAGE: dict[str, str] = {
    ".py": PYTHON,
    ".pyi": PYTHON,
    ".c": C,
    ".h": C_OR_CPP,
    ".C": CPP,
    ".cc": CPP,
    ".cpp": CPP,
    ".cxx": CPP,
    ".hh": CPP,
    ".hpp": CPP,
    ".hxx": CPP,
    ".ipp": CPP,
    ".inl": CPP,
    ".icc": CPP,
    ".tpp": CPP,
    ".cu": CUDA,
    ".cuh": CUDA,
    ".hip": HIP,
    ".sycl": SYCL,
}

_LOWER = {suffix.lower(): lang for suffix, lang in SUFFIX_LANGUAGE.items() if suffix != ".C"}


def language_of(path: str | PurePath) -> str | None:
    """Return the language of ``path`` from its suffix, or None when hepaudit does not analyse it."""
    suffix = PurePath(path).suffix
    if not suffix:
        return None
    lang = SUFFIX_LANGUAGE.get(suffix)
    if lang is None:
        lang = _LOWER.get(suffix.lower())
    return lang


def is_python(language: str) -> bool:
    """True for Python; every other supported language goes through lizard's C-like reader."""
    return language == PYTHON
