"""One check for the plain values in optimizer and scheduler state dicts: a loaded value must
have the kind of the value it replaces, so a tampered or foreign checkpoint fails when it is
loaded, not steps later inside an update."""

from __future__ import annotations

from typing import Any

from ..errors import CheckpointError


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_like(where: str, saved: Any, current: Any) -> None:
    """Raise CheckpointError naming `where` unless `saved` can stand in for `current`: a bool
    for a bool, a number for a number, a str for a str, a list or tuple of as many fitting
    items, a dict with the same keys. A kind the check does not know takes a value of the
    same type; a current None takes anything (there is nothing to compare with)."""
    if current is None:
        return
    if isinstance(current, bool):
        ok = isinstance(saved, bool)
    elif _is_number(current):  # ints and floats stand in for each other, as in Python
        ok = _is_number(saved)
    elif isinstance(current, (list, tuple)):
        ok = isinstance(saved, (list, tuple)) and len(saved) == len(current)
        if ok:
            for i, (s, c) in enumerate(zip(saved, current)):
                check_like(f"{where}[{i}]", s, c)
    elif isinstance(current, dict):
        ok = isinstance(saved, dict) and set(saved) == set(current)
        if ok:
            for key, value in current.items():
                check_like(f"{where}[{key!r}]", saved[key], value)
    else:
        ok = isinstance(saved, type(current))
    if not ok:
        raise CheckpointError(f"{where} is {_show(saved)}, but {_show(current)} is expected here")


def _show(value: Any) -> str:
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    if isinstance(value, (list, tuple, dict)):
        return f"{type(value).__name__} of {len(value)} {text}"
    return f"{type(value).__name__} {text}"
