"""Small text helpers for error messages."""


def first_line(error):
    """The first line of an exception's message, or its type's name."""
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
