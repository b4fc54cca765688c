"""Exceptions shared across modules."""


class WeightsNotAvailableError(FileNotFoundError):
    """Raised when pretrained weights can be neither downloaded nor found."""
