"""Where chains come from: Python registration, entry points, and ``[tool.hepaudit.chains]``.

All three name a factory, a function with no arguments that returns a :class:`~auditor.stages.Chain`;
factories run only when their chain is needed, so a chain's heavy imports (numba, CuPy, torch) cost
nothing to the others.

* In Python: ``auditor.register_chain("demo", build_demo)``.
* A package: ``[project.entry-points."hepaudit.chains"] demo = "mypkg.chain:build_demo"``.
* A project without packaging: ``[tool.hepaudit.chains] demo = "mypkg.chain:build_demo"`` in the
  ``pyproject.toml`` (or ``hepaudit.toml``) of the working folder, with that folder importable.
"""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Callable

from auditor.errors import UserError
from auditor.stages import Chain

Factory = Callable[[], Chain]
_REGISTERED: dict[str, Factory] = {}


def register_chain(name: str, factory: Factory) -> None:
    """Make ``factory`` available as chain ``name`` for ``hepaudit run``."""
    _REGISTERED[name] = factory


def _resolve(target: str, source: str) -> Factory:
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise UserError(f"Chain entry {target!r} in {source} must look like 'module:function'.")

    def factory() -> Chain:
        try:
            module = importlib.import_module(module_name)
            function = getattr(module, attribute)
        except (ImportError, AttributeError) as exc:
            raise UserError(f"Cannot load chain {target!r} from {source}: {exc}.") from None
        chain = function()
        if not isinstance(chain, Chain):
            raise UserError(f"{target} from {source} returned {type(chain).__name__}, not an auditor Chain.")
        return chain

    return factory


def _configured(folder: Path) -> dict[str, Factory]:
    from auditor.config import _read_toml  # the same TOML reader and error messages as audit

    found: dict[str, Factory] = {}
    for name in ("pyproject.toml", "hepaudit.toml"):
        path = folder / name
        if not path.is_file():
            continue
        data = _read_toml(path)
        table = data.get("tool", {}).get("hepaudit", {}) if name == "pyproject.toml" else data
        chains = table.get("chains", {}) if isinstance(table, dict) else {}
        if not isinstance(chains, dict):
            raise UserError(f"'chains' in {path} must be a table of name = \"module:function\".")
        for chain_name, target in chains.items():
            if not isinstance(target, str):
                raise UserError(f"Chain '{chain_name}' in {path} must be a \"module:function\" string.")
            found[chain_name] = _resolve(target, str(path))
        if chains and str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    return found


def available_chains(folder: Path | None = None) -> dict[str, Factory]:
    """Every chain factory known here: entry points, then configuration, then Python calls."""
    factories: dict[str, Factory] = {}
    for point in entry_points(group="hepaudit.chains"):
        factories[point.name] = _resolve(point.value, f"the entry point of {point.dist.name if point.dist else 'a package'}")
    factories.update(_configured(folder or Path.cwd()))
    factories.update(_REGISTERED)
    return factories


def load_chains(names: list[str] | None, folder: Path | None = None) -> tuple[list[Chain], list[str]]:
    """Build the named chains, or all of them when ``names`` is empty.

    A chain the user named that cannot be loaded is a UserError; when all chains are wanted, one
    that cannot be loaded is skipped and its problem returned, so the others still run.
    """
    factories = available_chains(folder)
    if not factories:
        raise UserError("No chains are registered: install the reference chains or declare "
                        "[tool.hepaudit.chains] in pyproject.toml.")
    wanted = names or list(factories)
    unknown = [n for n in wanted if n not in factories]
    if unknown:
        raise UserError(f"Unknown chain {', '.join(map(repr, unknown))}; known chains: {', '.join(sorted(factories))}.")
    chains: list[Chain] = []
    problems: list[str] = []
    for name in wanted:
        try:
            chain = factories[name]()
            chain.validate()
        except (UserError, ValueError) as exc:
            if names:
                raise UserError(f"Chain '{name}' cannot be used: {exc}") from None
            problems.append(f"chain '{name}' skipped: {exc}")
            continue
        chains.append(chain)
    if not chains:
        raise UserError("No registered chain could be loaded: " + "; ".join(problems))
    return chains, problems
