"""Settings declared once: a frozen dataclass whose fields are also keyword arguments and command-line options.

`setting` declares a field (default, help, how the command line offers
it); `Settings` is the base class; `fill` routes a function's keywords to
settings objects; `keywords_of` shows them in its signature; and
`add_arguments` makes the `transfer-tf` options. Pure Python: no TensorFlow.
"""

import dataclasses
import inspect
import os


def setting(default, help, *, flag=None, parse=None, choices=None, metavar=None, cli=True):
    """A settings field: its default, and how the command line offers it.

    Args:
        default: the default value.
        help: str. The option's help; the default is appended.
        flag: str or `None`. The option, e.g. `"--early-stopping"`.
            Defaults to the field name with dashes.
        parse: callable or `None`. Turns the option's text into the value;
            raises `ValueError` for a bad one. Defaults to `type(default)`.
        choices: tuple or `None`. Values the option takes, as text.
        metavar: str or `None`. The option's placeholder in `--help`.
        cli: bool. Whether the command line offers it. Defaults to `True`.
    """
    return dataclasses.field(default=default, metadata=dict(
        help=help, flag=flag, parse=parse, choices=choices, metavar=metavar, cli=cli))


class Settings:
    """What the settings dataclasses share: checks on creation, plain data out."""

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Raises `ValueError` for a value out of range (each class checks its own)."""

    def to_dict(self):
        """The settings as JSON-ready data (paths as text)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def replace(self, **changes):
        """A copy with some settings changed (and checked)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def field_names(cls):
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_args(cls, args):
        """The settings a parsed command line gives (fields it does not offer keep their default)."""
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
                      if f.metadata.get("cli") and hasattr(args, f.name)})


def _plain(value):
    if isinstance(value, os.PathLike):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def fill(settings_classes, keywords, given=None, *, caller):
    """Routes keyword arguments to the settings classes whose field they name.

    Args:
        settings_classes: dict of name to settings class, e.g.
            `{"model": ModelSettings, "training": FineTuneSettings}`.
        keywords: dict. Keyword arguments a function received.
        given: dict or `None`. Settings objects passed whole, by name; the
            keywords change their fields.
        caller: str. The function's name, for the error.

    Returns:
        dict of name to settings object.

    Raises:
        TypeError: for a keyword no settings class has, or a whole settings
            object of the wrong class.
    """
    owners = {}
    for name, cls in settings_classes.items():
        for field in cls.field_names():
            owners.setdefault(field, name)
    unknown = sorted(set(keywords) - set(owners))
    if unknown:
        raise TypeError(
            f"{caller}() got unexpected keyword argument(s) {', '.join(unknown)}. Valid: "
            f"{', '.join(sorted(owners))}")
    result = {}
    for name, cls in settings_classes.items():
        base = (given or {}).get(name)
        if base is not None and not isinstance(base, cls):
            raise TypeError(f"{name} must be a {cls.__name__}. Received: {type(base).__name__}")
        changes = {k: v for k, v in keywords.items() if owners[k] == name}
        result[name] = base.replace(**changes) if base is not None else cls(**changes)
    return result


def keywords_of(*settings_classes):
    """Decorator: shows the settings classes' fields as the function's keyword arguments.

    The function takes them as `**keywords`; `help()`, IDEs and
    `inspect.signature` see each with its default.
    """

    def decorate(function):
        parameters = [p for p in inspect.signature(function).parameters.values()
                      if p.kind is not inspect.Parameter.VAR_KEYWORD]
        taken = {p.name for p in parameters}
        for cls in settings_classes:
            defaults = cls()
            for name in cls.field_names():
                if name not in taken:
                    taken.add(name)
                    parameters.append(inspect.Parameter(
                        name, inspect.Parameter.KEYWORD_ONLY, default=getattr(defaults, name)))
        function.__signature__ = inspect.Signature(parameters)
        return function

    return decorate


def add_arguments(parser, *settings_classes):
    """Adds a command-line option for every offered field of the settings classes.

    A field named in several classes (none today) is offered once.
    """
    seen = set()
    for cls in settings_classes:
        for field in dataclasses.fields(cls):
            meta = field.metadata
            if not meta.get("cli") or field.name in seen:
                continue
            seen.add(field.name)
            flag = meta["flag"] or "--" + field.name.replace("_", "-")
            default = field.default
            shown = "none" if default is None else default
            text = meta["help"] if "(default:" in meta["help"] else f"{meta['help']} (default: {shown})"
            kwargs = dict(dest=field.name, default=default, help=text)
            if isinstance(default, bool):
                parser.add_argument(flag, action="store_true", **kwargs)
                continue
            parse = meta["parse"] or (str if default is None else type(default))
            kwargs["type"] = _argparse_type(parse)
            if meta["choices"]:
                kwargs["choices"] = meta["choices"]
            if meta["metavar"]:
                kwargs["metavar"] = meta["metavar"]
            parser.add_argument(flag, **kwargs)


def _argparse_type(parse):
    import argparse

    def convert(text):
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert
