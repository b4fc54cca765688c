"""`--config FILE`: the settings of `train` read from a YAML or TOML file.

Flags given on the command line override the file: its settings become the
subcommand's defaults, checked against the subcommand's own options.
"""

import argparse
import tomllib
from pathlib import Path


def apply_config(parser, command, path):
    """Makes the settings in a YAML/TOML file the defaults of a subcommand."""
    if command != "train":
        raise ValueError(f"--config applies to `train`. Received: command={command}")
    settings = load_config(path)
    subparser = subparsers_of(parser)[command]
    actions = {a.dest: a for a in subparser._actions if a.dest not in ("help", "config")}
    defaults = {}
    for key, value in settings.items():
        dest = key.replace("-", "_")
        if dest not in actions:
            known = ", ".join(sorted(d.replace("_", "-") for d in actions))
            raise ValueError(f"unknown setting {key!r} in {path}. Known settings: {known}")
        action = actions[dest]
        if action.type is not None and isinstance(value, str):
            try:
                value = action.type(value)
            except (TypeError, ValueError, argparse.ArgumentTypeError) as error:
                raise ValueError(f"bad value for {key!r} in {path}: {error}") from None
        if action.choices is not None and value not in action.choices:
            raise ValueError(
                f"bad value for {key!r} in {path}: choose from {', '.join(action.choices)}. "
                f"Received: {value!r}"
            )
        defaults[dest] = value
    subparser.set_defaults(**defaults)


def load_config(path):
    """Reads a `.yaml`/`.yml` or `.toml` settings file into a flat dict."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {path} does not exist")
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            settings = yaml.safe_load(text) or {}
        except yaml.YAMLError as error:
            raise ValueError(f"{path} is not valid YAML: {error}") from None
    elif path.suffix == ".toml":
        try:
            settings = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"{path} is not valid TOML: {error}") from None
    else:
        raise ValueError(f"config files end in .yaml, .yml or .toml. Received: {path}")
    if not isinstance(settings, dict):
        raise ValueError(f"{path} must hold settings as key: value pairs")
    return settings


def subparsers_of(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}
