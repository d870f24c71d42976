"""Errors a user can cause. The CLI prints them as one line and exits with status 2."""


class UserError(Exception):
    """A mistake in the user's input (option, file, config): one clear line, no traceback."""

    exit_code = 2


class UnknownNameError(UserError, LookupError):
    """A model, strategy, dataset, metric, corruption or profile name that is not registered."""

    def __init__(self, kind: str, name: str, suggestions: list[str], available: list[str]):
        self.kind, self.name, self.suggestions, self.available = kind, name, suggestions, available
        if suggestions:
            hint = "did you mean " + " or ".join(suggestions) + "?"
        else:
            shown = ", ".join(available[:12]) + (", ..." if len(available) > 12 else "")
            hint = f"available: {shown}" if available else "none are registered"
        super().__init__(f"unknown {kind} '{name}': {hint}")


class PluginError(Exception):
    """A plugin broke the contract (duplicate name, bad spec). Reported, never hidden."""
