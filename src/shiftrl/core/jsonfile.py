"""Reading the JSON records shiftrl writes (a run's config.json, a study's study.json, a
cached dataset's metadata.json): the object, or one line saying the file is damaged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shiftrl.core.errors import ShiftRLError


def read_json_object(
    path: Path, damaged: str, error: type[ShiftRLError] = ShiftRLError
) -> dict[str, Any]:
    """The JSON object in `path`; else `error` with one line, `{path}: {what went wrong};
    {damaged}` (e.g. "the run folder is damaged")."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise error(f"{path}: unreadable ({type(e).__name__}); {damaged}") from None
    if not isinstance(raw, dict):
        raise error(f"{path}: not a JSON object; {damaged}")
    return raw
