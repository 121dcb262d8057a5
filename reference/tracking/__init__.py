"""Reference charged-particle tracking chain (CPU, numba).

Stages, one module each: :mod:`clusterization` -> :mod:`spacepoints` -> :mod:`seeding`
-> :mod:`estimation` -> :mod:`ckf` -> :mod:`ambiguity`, plus the synthetic detector
(:mod:`geometry`), event generation (:mod:`simulation`, :mod:`digitization`), TrackML CSV
I/O (:mod:`trackml_io`) and truth-based physics performance (:mod:`performance`).
Units everywhere: millimetre, GeV, tesla, radian.
"""

from reference.tracking.errors import TrackingInputError

__all__ = ["TrackingInputError"]
