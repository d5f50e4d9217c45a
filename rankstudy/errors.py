"""The one exception type the toolkit raises for bad input; the CLI turns it into a one-line message."""


class StudyError(ValueError):
    """Bad input to the rank study: the message names the problem and the fix."""
