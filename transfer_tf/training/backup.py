"""Resuming a training run after it was killed: phase by phase, epoch by epoch.

Inside a phase, `EpochBackup` (Keras's `BackupAndRestore`, committed by one
rename) saves the weights, the optimizer state and the epoch after every
epoch: the weights go to a file of their own, then a rename of the metadata
that names them commits the epoch, so a kill while saving leaves the last
complete epoch (Keras's own callback writes in place, and a kill during its
first save left a truncated file that stopped the resume). At the end of a
phase, the classifier's weights and the phase's record are kept, and the
phase is marked finished. A resumed run:

- skips the finished phases, loading the weights the last one ended with;
- continues the interrupted phase from its last completed epoch, with its
  optimizer state;
- replays the shuffle of every epoch already run, so the remaining epochs
  see the batches an uninterrupted run would (for datasets built by
  `ttf.data` or from arrays);
- refuses to resume a run started with other settings.

Nothing read back is trusted (see `integrity`): every weights file is
recorded with its checksum when written and checked before it is loaded.
An epoch whose weights are damaged is passed over for the one before it
(two are kept), or the phase starts again from its beginning, each with a
line saying so; a damaged finished phase or run state is refused with a
message naming the file and `--overwrite`.

Keras's callback has two pitfalls with two `fit` calls, both handled here:
each phase gets its own folder (one shared folder makes phase 2 read phase
1's epoch and train none), and the epoch Keras restores is cleared after
each `fit` (Keras never resets it, so the next `fit` would skip epochs).

Under several workers every worker restores from the chief's folder, so
all resume at the same epoch (the folder must be on storage they share, as
for Keras's own callback). Every worker also saves what the chief saves:
a save during training runs collective operations that all workers must
join (with the chief saving alone, the workers' collectives went out of
step and training failed). The others save into a private temporary folder,
removed by `close()`.
"""

import functools
import json
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from transfer_tf.core.integrity import DamagedFileError, damage, fingerprint, write_atomically
from transfer_tf.core.text import first_line
from transfer_tf.data.pipeline import advance_shuffle
from transfer_tf.model import distribute
from transfer_tf.model.records import PhaseResult
from transfer_tf.model.saving import read_json, write_json

STATE_FILE = "state.json"
START_AGAIN = "This backup cannot be resumed; start the run again with --overwrite (overwrite=True)."
EPOCHS_FILE = "epochs.json"
RANDOM_FILE = "random.json"


class PhaseBackup:
    """The backup folder of one training run.

    Args:
        folder: str or path. Created if needed.
        signature: dict. What must match for a resume (the settings, the
            data's fingerprint, ...).
        strategy: `tf.distribute.Strategy` or `None`. Under several
            workers, only the chief writes `folder`; the others read it and
            write a private temporary folder until `close()`.

    Raises:
        ValueError: if the folder holds a run started with another signature.
    """

    def __init__(self, folder, signature, strategy=None):
        self.folder = Path(folder)
        self.signature = json.loads(json.dumps(signature, default=str))
        self.chief = distribute.is_chief(strategy)
        self.own = self.folder if self.chief else Path(tempfile.mkdtemp(prefix="transfer_tf_backup_"))
        self.drawn = 0  # epochs whose shuffle order this process has drawn
        self.skipped_fits = 0  # finished phases skipped here, whose fit drew an order before its epochs
        self.orders_per_epoch = orders_drawn_per_epoch()  # measured here, outside any strategy's scope
        state = self._state()
        if state is None:
            state = {"signature": self.signature, "finished": {}, "run": uuid.uuid4().hex}
            if self.chief:
                self.folder.mkdir(parents=True, exist_ok=True)
                self._write_state(state)
        elif state["signature"] != self.signature:
            changed = sorted(k for k in {*state["signature"], *self.signature}
                             if state["signature"].get(k) != self.signature.get(k))
            raise ValueError(
                f"{self.folder} holds an unfinished run started with other settings ({', '.join(changed)} "
                "differ). Resume with the same settings, or start again (--overwrite / a new backup_dir).")
        self.run_id = state.get("run")  # ties every epoch backed up here to this run

    def finished(self, name):
        """`(PhaseResult, history)` of a finished phase, or `None`."""
        entry = (self._state() or {"finished": {}})["finished"].get(name)
        return None if entry is None else (PhaseResult(**entry["result"]), entry["history"])

    def epochs_done(self, name):
        """The run's number of completed epochs when phase `name` was last backed up (0: none)."""
        entry, _ = intact_epoch(self.folder / name, self.run_id)
        return 0 if entry is None else entry["epoch"]

    def callbacks(self, name):
        """The phase's `EpochBackup`, and on the chief a log of its epochs.

        A worker other than the chief restores from the chief's folder and
        saves into its own.
        """
        callbacks = [EpochBackup(self.folder / name, save_to=self.own / name, run_id=self.run_id)]
        if self.chief:
            callbacks.append(EpochLog(self.folder / f"{name}.{EPOCHS_FILE}"))
        return callbacks

    def earlier_epochs(self, name):
        """The per-epoch logs of the phase before this resume."""
        path = self.folder / f"{name}.{EPOCHS_FILE}"
        return read_json(path) if path.is_file() else []

    def finish(self, name, result, history, classifier, ran=None):
        """Keeps the classifier's weights at the phase's end and marks the phase finished.

        `ran`: the epochs this process ran (they drew their orders here).
        """
        self.drawn += result.epochs if ran is None else ran
        path = self.own / f"after_{name}.weights.h5"
        write_atomically(path, lambda partial: classifier.save_weights(partial, overwrite=True),
                         suffix=".weights.h5")
        _write_json_atomically(self.own / f"after_{name}.{RANDOM_FILE}", seed_states(classifier))
        if not self.chief:
            return
        state = self._state()
        state["finished"][name] = {
            "result": result.__dict__, "history": history,
            "files": {f.name: fingerprint(f) for f in (path, self.own / f"after_{name}.{RANDOM_FILE}")}}
        state["last"] = name
        self._write_state(state)

    def restore_phase(self, name, model):
        """Loads the weights a finished phase ended with (its epochs are not drawn again here)."""
        recorded = self._state()["finished"][name].get("files", {})
        weights, random = self.folder / f"after_{name}.weights.h5", self.folder / f"after_{name}.{RANDOM_FILE}"
        for path in (weights, random):
            reason = damage(path, recorded.get(path.name))
            if reason is not None:
                raise DamagedFileError(f"{path} (the weights phase {name!r} ended with) is damaged: {reason}. "
                                       + START_AGAIN)
        model.load_weights(weights)
        restore_seed_states(model, read_json(random))
        if self.finished(name)[0].epochs > 0:
            self.skipped_fits += 1

    def replay_shuffle(self, phase):
        """Advances the phase's training order to the epoch it starts (or resumes) at."""
        target = self.epochs_done(phase.name) or phase.first_epoch
        owed = max(target - self.drawn, 0) * self.orders_per_epoch + self.skipped_fits
        advance_shuffle(phase.train, owed)
        self.drawn, self.skipped_fits = max(self.drawn, target), 0

    def close(self):
        """Removes a worker's private folder (the chief's folder stays for the caller)."""
        if not self.chief:
            shutil.rmtree(self.own, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _state(self):
        path = self.folder / STATE_FILE
        if not path.is_file():
            if self.folder.is_dir() and any(self.folder.iterdir()):
                raise DamagedFileError(f"{self.folder} holds backup files but no {STATE_FILE}, which says "
                                       "what they are. " + START_AGAIN)
            return None
        try:
            state = json.loads(path.read_text())
            if not isinstance(state, dict) or "signature" not in state or "finished" not in state:
                raise ValueError("not a backup state")
        except (OSError, ValueError) as error:
            raise DamagedFileError(f"{path} is damaged ({first_line(error)}). " + START_AGAIN) from None
        return state

    def _write_state(self, state):
        _write_json_atomically(self.folder / STATE_FILE, state)


class EpochBackup(keras.callbacks.BackupAndRestore):
    """Keras's `BackupAndRestore`, each epoch committed by the rename of the metadata naming its weights.

    The metadata also holds the model's random-number states (dropout's seed
    generators), which Keras's callback does not save, so a resumed run
    draws the dropout masks an uninterrupted one would. Restores from
    `backup_dir`; saves into `save_to` (default: the same folder), which it
    removes when training ends.
    """

    METADATA = "training_metadata.json"

    def __init__(self, backup_dir, save_to=None, run_id=None):
        super().__init__(str(backup_dir))
        self.save_to = Path(backup_dir if save_to is None else save_to)
        self.run_id = run_id
        self.last_entry = None  # the epoch restored or last saved: kept beside the next as a fallback

    def on_train_begin(self, logs=None):
        self._load_model()

    def _load_model(self):
        entry, problems = intact_epoch(self.backup_dir, self.run_id)
        for problem in problems:
            then = (f"resuming from epoch {entry['epoch']}" if entry is not None
                    else "starting the phase again from its beginning")
            print(f"Resume: {problem}; {then}.", file=sys.stderr)
        self.last_entry = entry
        if entry is None:
            return
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(Path(self.backup_dir) / entry["weights"])
        restore_seed_states(self.model, entry["random"])
        self.model._initial_epoch = entry["epoch"]

    def _save_model(self):
        self.save_to.mkdir(parents=True, exist_ok=True)
        weights = f"epoch_{self._current_epoch}.weights.h5"
        self.model.save_weights(self.save_to / weights, overwrite=True)
        entry = {"epoch": self._current_epoch, "weights": weights, "random": seed_states(self.model),
                 "checksum": fingerprint(self.save_to / weights), "run": self.run_id}
        previous = self.last_entry
        kept = [entry] + ([] if previous is None or previous["weights"] == weights else [previous])
        _write_json_atomically(self.save_to / self.METADATA, {**entry, "previous": kept[1:]})
        self.last_entry = entry
        for old in self.save_to.glob("epoch_*.weights.h5"):
            if old.name not in {e["weights"] for e in kept}:
                old.unlink()

    def on_train_end(self, logs=None):
        shutil.rmtree(self.save_to, ignore_errors=True)


def intact_epoch(folder, run_id=None):
    """The newest backed-up epoch of a phase whose weights are intact, and what was passed over.

    Returns:
        `(entry, problems)`: `entry` is `{"epoch", "weights", "random",
        "checksum", "run"}` (of the run `run_id`) or `None` (no intact epoch: the phase starts from its
        beginning); `problems` lists what was damaged, one line each.
    """
    folder = Path(folder)
    metadata = folder / EpochBackup.METADATA
    if not metadata.is_file():
        leftovers = sorted(p.name for p in folder.glob("epoch_*.weights.h5")) if folder.is_dir() else []
        return None, ([f"{metadata} is missing beside {', '.join(leftovers)}"] if leftovers else [])
    try:
        latest = json.loads(metadata.read_text())
        entries = [latest, *latest.get("previous", [])]
        if not all(isinstance(e, dict) and {"epoch", "weights", "random"} <= set(e) for e in entries):
            raise ValueError("an epoch lacks its number, weights file or random state")
    except (OSError, ValueError, TypeError, AttributeError) as error:
        return None, [f"{metadata} is damaged ({first_line(error)})"]
    problems = []
    for entry in entries:
        path = folder / str(entry["weights"])
        reason = damage(path, entry.get("checksum"))
        if reason is None and entry.get("run") != run_id:
            reason = "it belongs to another run"
        if reason is None:
            return entry, problems
        problems.append(f"{path} (epoch {entry['epoch']}) is damaged: {reason}")
    return None, problems


class EpochLog(keras.callbacks.Callback):
    """Appends each epoch's logs to a JSON file (written whole, then renamed)."""

    def __init__(self, path):
        super().__init__()
        self.path = Path(path)

    def on_epoch_end(self, epoch, logs=None):
        entries = read_json(self.path) if self.path.is_file() else []
        entries = [e for e in entries if e["epoch"] < epoch] + [
            {"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}}]
        _write_json_atomically(self.path, entries)


def _seed_variables(model):
    """The seed generators' state variables, in the model's own order (their names vary by process)."""
    return [v for v in model.variables if "seed_generator" in v.path]


def seed_states(model):
    """The model's random-number states, as lists."""
    return [keras.ops.convert_to_numpy(v).tolist() for v in _seed_variables(model)]


def restore_seed_states(model, states):
    variables = _seed_variables(model)
    if len(states) == len(variables):
        for variable, state in zip(variables, states):
            variable.assign(state)


def _write_json_atomically(path, value):
    write_atomically(path, lambda partial: write_json(partial, value))


@functools.cache
def orders_drawn_per_epoch():
    """How many orders Keras's `fit` draws from a reshuffling dataset per epoch (measured once).

    Keras 3.15 makes two iterators per epoch, each drawing an order; the
    epochs of a resumed run are replayed with this count. It is measured on
    a tiny model rather than assumed, so another Keras version is handled.
    """
    def dataset():
        return tf.data.Dataset.from_tensor_slices((np.arange(8.0)[:, None], np.zeros(8))).shuffle(
            8, seed=7, reshuffle_each_iteration=True).batch(4)

    reference = dataset()
    orders = [np.concatenate([x.numpy().ravel() for x, _ in reference]) for _ in range(9)]
    fitted = dataset()
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(fitted, epochs=2, verbose=0, shuffle=False)
    following = np.concatenate([x.numpy().ravel() for x, _ in fitted])
    drawn = [k for k, order in enumerate(orders) if (order == following).all()]
    return drawn[0] // 2 if drawn and drawn[0] % 2 == 0 else 1
