"""The one exception type the CLI turns into a single line and exit code 2.

Anything a user can get wrong (a path, a name, a shape) raises `UsageError` with a message that
says what was wrong and how to fix it. It subclasses `ValueError` so library callers can catch
it the ordinary way.
"""


class UsageError(ValueError):
    """Bad input from the user: the message says what was wrong and what to do instead."""
