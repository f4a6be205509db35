"""User-facing errors.

Anything a user can cause by their input (a missing dataset, a malformed genotype, a bad checkpoint) raises
:class:`DartsNasError`. The command line prints its message on one line and exits with status 2; it never shows a
traceback for these.
"""


class DartsNasError(Exception):
    """An expected error with a message meant for the user."""
