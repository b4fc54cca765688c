"""A time budget: parsed from text such as `10m`, spent step by step, never overdrawn on purpose.

`Budget` is the clock of a job that must end by a stated time: before a step
it answers whether the step's estimated cost still fits, and it records
each step (estimated and measured seconds), so the estimates of later steps
can come from measured ones (the caller keeps what each step measured). Pure Python: the command line parses budgets
without loading TensorFlow.
"""

import dataclasses
import re
import time

_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_budget(value):
    """Seconds from `90`, `90s`, `10m`, `1.5h` or `1h30m`.

    Raises:
        ValueError: for text that is not a positive duration.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        parts = re.fullmatch(r"((?:\d+(?:\.\d+)?[hms])+|\d+(?:\.\d+)?)", text)
        if parts is None:
            raise ValueError(f"A budget is a duration such as 300, 90s, 10m or 1h30m. Received: budget={value!r}")
        seconds = sum(float(number) * _UNITS[unit or "s"]
                      for number, unit in re.findall(r"(\d+(?:\.\d+)?)([hms]?)", text))
    if not seconds > 0:
        raise ValueError(f"A budget must be more than 0 seconds. Received: budget={value!r}")
    return seconds


def format_seconds(seconds):
    """`95.0` as `1m35s`, `12.3` as `12.3s`."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m{rest:02d}s"


@dataclasses.dataclass
class Step:
    """One planned step of a budgeted job.

    Attributes:
        name: str.
        estimated: float. Seconds the step was expected to take when it was
            planned.
        note: str. Why it did not run; empty if it fitted.
    """

    name: str
    estimated: float
    note: str = ""


class Budget:
    """The seconds a job may spend, from the moment it is made.

    Args:
        seconds: float. The whole budget.
        reserve: float. Seconds kept back for what must follow the steps
            (saving, the report). Defaults to `0`.
        clock: callable returning seconds. Defaults to `time.monotonic`.
        started: float or `None`. The `clock` time the budget counts from.
            Defaults to `None`: now.
    """

    def __init__(self, seconds, *, reserve=0.0, clock=time.monotonic, started=None):
        self.seconds = float(seconds)
        self.reserve = float(reserve)
        self.clock = clock
        self.started = clock() if started is None else float(started)
        self.steps = []

    def elapsed(self):
        return self.clock() - self.started

    def left(self):
        """Seconds left for steps: the budget minus what is spent and the reserve."""
        return self.seconds - self.reserve - self.elapsed()

    def deadline(self):
        """The clock time by which the steps must end."""
        return self.started + self.seconds - self.reserve

    def plan(self, name, estimated, *, within=None):
        """Records a step; returns it if its estimate fits, else `None` (recorded as skipped).

        The step fits if its estimate is at most what is left, and at most
        `within` seconds (a share of the budget for one stage) when given.
        """
        step = Step(name, float(estimated))
        self.steps.append(step)
        available = self.left() if within is None else min(self.left(), within)
        if step.estimated > available:
            step.note = f"skipped: would take about {step.estimated:.0f} s, {max(available, 0):.0f} s left"
            return None
        return step
