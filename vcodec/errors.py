"""Errors a user can cause and fix: the CLI prints them as one line, no traceback."""


class UserError(Exception):
    """Bad input, output or option. The message is the whole story."""


class StreamError(UserError):
    """A .lvc stream is truncated, corrupted or of an unsupported version."""
