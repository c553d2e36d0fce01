"""User-facing errors.

Anything a user can cause (a bad path, an unknown algorithm, NaN in data) raises
`ShiftRLError` with a one-line message; the CLI prints it and exits non-zero
instead of showing a traceback. Programming errors stay ordinary exceptions.
"""


class ShiftRLError(Exception):
    """A problem with the user's input, reported as one clear line."""


class DataError(ShiftRLError):
    """A dataset file is missing, corrupt, or fails validation."""


class ConfigError(ShiftRLError):
    """An unknown algorithm, add-on, preset or `--set key=value`."""


class DivergenceError(ShiftRLError):
    """Training produced inf / NaN losses or parameters (the divergence guard stopped it)."""

    exit_code = 3
