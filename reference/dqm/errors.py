"""Exceptions for problems the user can cause (bad files, bad configuration values)."""


class DQMDataError(ValueError):
    """Raised for invalid data-quality-monitoring input: bad HDF5 files, bad values, bad settings.

    The message is one sentence meant to be shown to the user as is.
    """
