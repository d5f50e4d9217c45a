"""The exception types the model package raises for bad input; the CLI turns them into a one-line message."""


class RexnetError(ValueError):
    """Bad input to the ReXNet package: the message names the problem, then `; ` and the fix."""


class BudgetUnreachable(RexnetError):
    """No width multiplier gives a network within the MACs tolerance of the budget (channels are integers,
    so MACs are a step function of the multiplier and can jump over a narrow window)."""
