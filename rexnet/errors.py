"""The one exception type the model package raises for bad input; the CLI turns it into a one-line message."""


class RexnetError(ValueError):
    """Bad input to the ReXNet package: the message names the problem, then `; ` and the fix."""
