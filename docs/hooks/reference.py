"""Generates the reference pages' lists from the code, so that they cannot drift from it.

- `<!-- api -->` (reference/api.md): a mkdocstrings block for every public
  name of `transfer_tf`, at the module that defines it, then every name of
  `transfer_tf.data` and `transfer_tf.evaluation.plots`.
- `<!-- cli -->` (reference/cli-options.md): `transfer-tf --help` and each
  command's `--help`, from the parser itself (building it loads no TensorFlow).
"""

import contextlib
import importlib
import io


def on_page_markdown(markdown, page, config, files):
    if "<!-- api -->" in markdown:
        markdown = markdown.replace("<!-- api -->", api_reference())
    if "<!-- cli -->" in markdown:
        markdown = markdown.replace("<!-- cli -->", cli_reference())
    return markdown


def api_reference():
    import transfer_tf

    blocks = ["## `transfer_tf`\n"]
    for name, module in sorted(transfer_tf._PUBLIC.items(), key=lambda item: item[0].lower()):
        blocks.append(f"::: transfer_tf.{module}.{name}\n")
    for public, module in transfer_tf._SUBMODULES.items():
        names = importlib.import_module(f"transfer_tf.{module}").__all__
        blocks.append(f"## `transfer_tf.{public}`\n")
        blocks.append(f"::: transfer_tf.{module}\n    options:\n      members: false\n      show_root_heading: false\n")
        for name in names:
            blocks.append(f"::: transfer_tf.{module}.{name}\n")
    return "\n".join(blocks)


def cli_reference():
    from transfer_tf.cli import build_parser
    from transfer_tf.cli.config_file import subparsers_of

    parser = build_parser()
    sections = [("transfer-tf", parser)] + [(f"transfer-tf {name}", sub) for name, sub in
                                            subparsers_of(parser).items()]
    text = []
    for title, sub in sections:
        with contextlib.redirect_stdout(io.StringIO()) as shown:
            sub.print_help()
        text.append(f"## `{title}`\n\n```text\n{shown.getvalue().rstrip()}\n```\n")
    return "\n".join(text)
