"""Exceptions raised by mentor. Each names the problem so a user can fix their input."""


class MentorError(Exception):
    """Base class of every error mentor raises on purpose."""


class ConfigError(MentorError, ValueError):
    """An unknown name, a bad hyper-parameter or an inconsistent combination of options."""


class DataError(MentorError, ValueError):
    """Input data that cannot be trained on: shapes, labels, non-finite values, empty sets."""


class TrainingError(MentorError):
    """A run that cannot go on: a loss or a parameter became NaN or infinite."""


class CheckpointError(MentorError):
    """A checkpoint that is missing, corrupt, or was written by another program or run."""


def check_unit_interval(name: str, value: float) -> float:
    """A rate, decay or probability in [0, 1), or a ConfigError naming it."""
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"{name} must be in [0, 1), got {value}")
    return float(value)
