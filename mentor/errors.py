"""Exceptions raised by mentor. Each names the problem so a user can fix their input."""


class MentorError(Exception):
    """Base class of every error mentor raises on purpose."""


class ConfigError(MentorError, ValueError):
    """An unknown name, a bad hyper-parameter or an inconsistent combination of options."""


class DataError(MentorError, ValueError):
    """Input data that cannot be trained on: shapes, labels, non-finite values, empty sets."""


class CheckpointError(MentorError):
    """A checkpoint that is missing, corrupt, or was written by another program or run."""
