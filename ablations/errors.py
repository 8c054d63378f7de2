"""Errors a user can cause. The CLI catches these once: one line, exit code 2."""


class AblationError(Exception):
    """Bad input from the user: the message names the problem and the fix."""


class ConfigError(AblationError):
    """A search space or an override that does not validate."""


class StudyError(AblationError):
    """A study that cannot be found, opened or resumed as asked."""
