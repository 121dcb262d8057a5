"""hepaudit: measure what high-energy-physics code costs and where it should run."""

__version__ = "0.1.0"
