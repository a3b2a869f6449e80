"""The errors editvit raises for bad input: one module, imported by every package and importing none of them.

The command line prints any of them as one line (`editvit COMMAND: error: ...`) and exits with code 2.
"""


class EditvitError(ValueError):
    """Bad input from the user: a config, a data set, a weights file or an option that cannot be used."""


class ConfigError(EditvitError):
    """A configuration that cannot be used: unknown key, wrong type, missing value, inconsistent values."""


class DataError(EditvitError):
    """Data that cannot be found or read: a missing folder, a wrong layout, an image that does not decode."""


class CheckpointError(EditvitError):
    """A weights file that cannot be read, or whose weights do not fit the model."""


def original_message(error: Exception) -> str:
    """The message of a DataError raised in a DataLoader worker, without the worker's traceback text.

    torch re-raises a worker's exception as `type(e)(text)` where text holds the whole worker traceback; its last
    line is `<module>.DataError: <message>`.
    """
    text = str(error)
    if 'Original Traceback' not in text:
        return text
    last = [line for line in text.splitlines() if line.strip()][-1]
    return last.split('DataError: ', 1)[-1]
