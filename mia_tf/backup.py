"""Resume after a kill: Keras' BackupAndRestore, made safe against a kill during its own save.

Keras writes `latest.weights.h5` in place and then `training_metadata.json` (the epoch): a kill
during the first write leaves a torn HDF5 file that the next run cannot open ("bad object header
version number"), and one between the two pairs the new weights with the old epoch, so an epoch
is trained twice. Here both files are written into a fresh directory beside the backup, which
then replaces it by renames; a kill at any moment leaves one whole backup to resume from.
"""

import json
import os
import shutil


def backup_and_restore(backup_dir):
    """A `keras.callbacks.BackupAndRestore` for `backup_dir` whose every save is all-or-nothing."""
    import keras

    class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
        def on_train_begin(self, logs=None):
            previous = self.backup_dir + ".old"
            if not os.path.isdir(self.backup_dir) and os.path.isdir(previous):
                os.replace(previous, self.backup_dir)  # killed between the two renames of a save
            self._load_model()

        def _save_model(self):
            staging, previous = self.backup_dir + ".new", self.backup_dir + ".old"
            shutil.rmtree(staging, ignore_errors=True)  # a save that a kill interrupted
            os.makedirs(staging)
            self.model.save_weights(os.path.join(staging, os.path.basename(self._weights_path)))
            with open(os.path.join(staging, os.path.basename(self._training_metadata_path)), "w") as f:
                json.dump({"epoch": self._current_epoch, "batch": self._last_batch_seen}, f)
            shutil.rmtree(previous, ignore_errors=True)
            if os.path.isdir(self.backup_dir):
                os.replace(self.backup_dir, previous)
            os.replace(staging, self.backup_dir)
            shutil.rmtree(previous, ignore_errors=True)

    return AtomicBackupAndRestore(backup_dir)
