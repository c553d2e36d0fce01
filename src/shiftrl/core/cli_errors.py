"""How every `shiftrl` command reports a user's mistake: one line, no traceback.

Here, below the command modules, so `shiftrl.cli` and the sub-apps (`data`, `dynamics`,
`zoo`) all import it directly instead of reaching up into `shiftrl.cli`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import typer

from shiftrl.core.errors import ShiftRLError


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Report a user mistake as one line and exit 2 (or the error's own code); interruptions
    exit 130."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ShiftRLError as e:
            typer.echo(f"shiftrl: error: {e}", err=True)
            raise typer.Exit(getattr(e, "exit_code", 2)) from None
        except KeyboardInterrupt:
            typer.echo("shiftrl: interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper
