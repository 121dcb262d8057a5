"""Errors a user can cause. The CLI turns them into one sentence and exit code 2."""


class UserError(Exception):
    """A problem with the user's input (path, configuration, options), not a bug."""

    exit_code = 2
