"""What `auto` chose and why, as tables: one row per candidate base, one per recipe tried.

Read from `auto.json`; the run report, its page and `transfer-tf auto`
print the same tables.
"""


def auto_tables(auto):
    """`[(heading, header, rows, note), ...]` for the bases and the recipes of an `auto.json` record."""
    chosen = auto["chosen"]
    bases = [(row["backbone"], row["image_size"], _number(row.get("logme"), ".3f"),
              _number(row.get("linear_probe"), ".1%"), _number(row.get("seconds"), ".1f", " s"),
              row.get("note") or "")
             for row in auto["bases"]]
    probed = any(row.get("linear_probe") is not None for row in auto["bases"])
    base_note = ("Each base ran once, frozen, over the training images; LogME on its pooled features orders "
                 "them (higher is better), " + ("the 5-fold linear probe is shown beside it" if probed else
                                                "no linear probe ran (too few images of a class for its folds)")
                 + ". The recipes were tried on the first, and the best recipe on the second.")
    trials = [(trial["recipe"], f"{trial['backbone']} {trial['image_size']} px",
               _number(trial["validation_accuracy"], ".1%"), _number(trial["validation_loss"], ".3f"),
               _number(trial["estimated_seconds"] or None, ".0f", " s"), _number(trial["seconds"], ".0f", " s"),
               "chosen" if _same(trial, chosen) else (trial["note"] or ""))
              for trial in auto["trials"]]
    test = auto.get("test_accuracy")
    trial_note = (f"Chosen on the validation images alone: {chosen['recipe']} on {chosen['backbone']} at "
                  f"{chosen['image_size']} px, validation accuracy {chosen['validation_accuracy']:.1%}"
                  + ("" if test is None else f"; test accuracy {test:.1%}, read after the choice") +
                  f". {auto['seconds']:.0f} s of the {auto['budget_seconds']:.0f} s budget spent"
                  + (" in all." if auto.get("finished") else " before saving and this report."))
    return [("Automatic choice: bases", ["backbone", "size", "LogME", "linear probe", "time", "note"], bases,
             base_note),
            ("Automatic choice: recipes", ["recipe", "base", "validation accuracy", "validation loss",
                                           "estimated minimum", "time", "note"], trials, trial_note)]


def _same(trial, chosen):
    return all(trial[key] == chosen[key] for key in ("recipe", "backbone", "image_size", "seconds"))


def _number(value, spec, unit=""):
    return "-" if value is None else f"{value:{spec}}{unit}"


def format_tables(tables):
    """The tables as plain text columns, for the terminal."""
    lines = []
    for heading, header, rows, note in tables:
        widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
        lines += ["", heading]
        for row in (header, *rows):
            lines.append("  ".join(f"{str(cell):<{width}}" for cell, width in zip(row, widths)).rstrip())
        lines += [note] if note else []
    return "\n".join(lines[1:])
