"""hepaudit: measure what high-energy-physics code costs and where it should run.

The public API for registering chains: :class:`Chain`, :class:`Agreement` and
:func:`register_chain`.
"""

__version__ = "0.1.0"

from auditor.registry import register_chain  # noqa: E402
from auditor.stages import Agreement, Chain  # noqa: E402

__all__ = ["Agreement", "Chain", "register_chain", "__version__"]
