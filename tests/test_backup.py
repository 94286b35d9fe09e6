"""A save of the training backup interrupted at any point leaves one whole backup to resume from.

Keras' own BackupAndRestore writes the weights in place and then the epoch, so a kill inside its
save left a torn .h5 ("bad object header version number") that the rerun could not open; CI hit it
once in `test_faults.py`. Here the save is cut at each point in turn (an exception leaves the disk
as a kill would: the save has no clean-up to run) and a fresh model must restore an epoch together
with exactly the weights that epoch ended with.
"""

import json
import os

import numpy as np
import pytest

from mia_tf import backup


class Stopped(Exception):
    """The run stopped between epochs, after a whole save."""


class Interrupted(Exception):
    """The save was cut."""


def _model():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(keras.optimizers.Adam(0.1), loss="mse")
    return model


def _fit(model, backup_dir, epochs, stop_before_epoch=None):
    """Fit on fixed data; return the weights each epoch ended with (by epoch number from 1)."""
    import keras

    ended = {}

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            ended[epoch + 1] = [w.copy() for w in self.model.get_weights()]

        def on_epoch_begin(self, epoch, logs=None):
            if epoch == stop_before_epoch:
                raise Stopped

    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    try:
        model.fit(x, x[:, :3], epochs=epochs, batch_size=16, verbose=0, shuffle=False,
                  callbacks=[backup.backup_and_restore(backup_dir), Record()])
    except Stopped:
        pass
    return ended


def _torn_save_weights(model):
    def save_weights(filepath, **kwargs):
        type(model).save_weights(model, filepath, **kwargs)
        with open(filepath, "r+b") as f:
            f.truncate(os.path.getsize(filepath) // 2)
        raise Interrupted

    return save_weights


@pytest.mark.parametrize("cut", ["inside the weights file", "before the epoch file",
                                 "before the old backup moves aside", "between the two renames"])
def test_an_interrupted_save_leaves_a_whole_backup(tmp_path, monkeypatch, cut):
    backup_dir = str(tmp_path / "backup")
    ended = _fit(_model(), backup_dir, epochs=5, stop_before_epoch=2)  # a whole backup of epoch 2

    model = _model()
    if cut == "inside the weights file":
        monkeypatch.setattr(model, "save_weights", _torn_save_weights(model))
    elif cut == "before the epoch file":
        monkeypatch.setattr(backup.json, "dump", lambda *a, **k: (_ for _ in ()).throw(Interrupted()))
    else:
        renames_allowed = 0 if cut == "before the old backup moves aside" else 1
        real_replace, calls = os.replace, []

        def replace(src, dst):
            calls.append(src)
            if len(calls) > renames_allowed:
                raise Interrupted
            real_replace(src, dst)

        monkeypatch.setattr(backup.os, "replace", replace)
    with pytest.raises(Interrupted):
        ended.update(_fit(model, backup_dir, epochs=5))  # resumes at epoch 3; its save is cut
    monkeypatch.undo()

    restored = _model()
    callback = backup.backup_and_restore(backup_dir)
    callback.set_model(restored)
    callback.on_train_begin()
    epoch = restored._initial_epoch
    assert epoch == 2, f"a cut save must leave the epoch-2 backup, restored epoch {epoch}"
    for got, want in zip(restored.get_weights(), ended[epoch]):
        np.testing.assert_array_equal(got, want)


def test_a_whole_save_replaces_the_backup_and_leaves_nothing_beside_it(tmp_path):
    backup_dir = tmp_path / "backup"
    _fit(_model(), str(backup_dir), epochs=5, stop_before_epoch=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup"]
    assert json.loads((backup_dir / "training_metadata.json").read_text())["epoch"] == 3
