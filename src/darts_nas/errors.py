"""User-facing errors.

Anything a user can cause by their input (a missing dataset, a malformed genotype, a bad checkpoint) raises
:class:`DartsNasError`. The command line prints its message on one line and exits with status 2; it never shows a
traceback for these.
"""


class DartsNasError(Exception):
    """An expected error with a message meant for the user."""


def registry_lookup(table: dict, name: str, what: str):
    """``table[name]``, or one clear error naming what is known (every registry's lookup)."""
    try:
        return table[name]
    except (KeyError, TypeError):
        raise DartsNasError(f"unknown {what} {name!r} (known: {', '.join(table)})") from None
