"""Writing a matplotlib figure: its resolution, an atomic PNG, and inline display in notebooks.

Figures are made without `pyplot`, so no global figure state builds up in
long jobs; `finish` gives them what `pyplot` would have.
"""

import os
from pathlib import Path

DPI = 100


def finish(figure, path):
    """Shows `figure` inline in a notebook and, given `path`, writes it there as a PNG; returns it."""
    _show_inline_in_notebooks()
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        figure.savefig(partial, dpi=DPI, format="png")
        os.replace(partial, path)  # never a half-written PNG under the real name
    return figure


def _show_inline_in_notebooks():
    """Lets IPython show a returned `Figure` as a PNG, as `%matplotlib inline` does.

    Figures made without `pyplot` have no display format in a notebook until
    a matplotlib backend is enabled; this registers the PNG one, once.
    """
    from matplotlib.figure import Figure

    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    formatter = shell.display_formatter.formatters["image/png"]
    try:
        formatter.lookup_by_type(Figure)
    except KeyError:
        from IPython.core.pylabtools import print_figure

        formatter.for_type(Figure, lambda figure: print_figure(figure, "png"))
