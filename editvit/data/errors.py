"""The one error type of the data package."""


class DataError(ValueError):
    """Data that cannot be found or read: a missing folder, a wrong layout, an image that does not decode."""


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
