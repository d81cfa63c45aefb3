"""The errors a user can cause: printed by the CLI as one line, never as a traceback."""


class UserError(ValueError):
    """Bad input (spec, file, flag, data): one line naming what is wrong and what would be valid."""


class MissingFile(UserError, FileNotFoundError):
    """A file or folder the user named (or a stage needs) that is not there."""


class SearchFailed(UserError):
    """A search that ended without a result to report (no trial completed)."""
