"""Exceptions for problems the user can cause (bad files, bad values)."""


class TrackingInputError(ValueError):
    """Raised for invalid user input: missing files or columns, malformed rows, NaNs, ...

    The message is one sentence meant to be shown to the user as is.
    """
