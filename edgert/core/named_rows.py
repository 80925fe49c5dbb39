"""NamedTuple results whose ``len()`` is their number of rows (detections, tracks), not of fields."""
from __future__ import annotations


def named_rows(cls):
    """Class decorator for a NamedTuple that overrides ``__len__`` to count rows: keeps `_make`, and so
    `_replace`, working.

    NamedTuple's `_make` checks the field count with ``len()``, which such a class answers with its
    rows: `_replace` raised TypeError unless there were exactly as many rows as fields. typing.NamedTuple
    forbids defining `_make` in the class body, hence a decorator.
    """
    fields = len(cls._fields)

    def _make(klass, iterable):
        result = tuple.__new__(klass, iterable)
        if tuple.__len__(result) != fields:
            raise TypeError(f"{klass.__name__}: expected {fields} values, got {tuple.__len__(result)}")
        return result

    _make.__doc__ = f"Make a new {cls.__name__} from a sequence or iterable of its {fields} fields."
    cls._make = classmethod(_make)
    return cls
