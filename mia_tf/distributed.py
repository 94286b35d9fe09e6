"""Training and attacks on several devices or machines, on TensorFlow's own engine (tf.distribute).

Strategies by name: `default` (one device), `mirrored` (every local GPU, or every logical CPU,
in one process) and `multiworker` (one process per machine, each told the cluster and its own
place in it by the TF_CONFIG environment variable; synchronous, gradients all-reduced).

Every model trained here (the target, decoders, shadow heads, query-free shadows) goes through
`fit`, a custom training loop, not Keras' `Model.fit`: Keras 3's fit fails under
MultiWorkerMirroredStrategy with real workers ("Attempt to convert a value (PerReplica...)",
keras-team/keras#20585). The loop is the one TensorFlow's distributed-training guide gives: a
distributed tf.data input, a `strategy.run` step whose loss is summed over the replica's
examples and divided by the global batch's size, the optimizer all-reducing the gradients. It
drives ordinary Keras callbacks (learning-rate schedules, CSV logs, `mia_tf.backup`).

Workers: the chief (task 0) writes; every other worker gets temporary directories in place of
its output and cache (`writable_dirs`), removed when it exits, as TensorFlow's multi-worker
guide does for non-chief checkpoints. A killed run resumes from the chief's backup: on start the
chief's restored weights, optimizer state and epoch are broadcast to every worker, so workers
need no shared file system.
"""

import atexit
import contextlib
import faulthandler
import json
import os
import shutil
import socket
import tempfile
import threading
import time

import numpy as np

from mia_tf.errors import UsageError

STRATEGIES = ("default", "mirrored", "multiworker")
CONNECT_SECONDS = 120  # for every worker to answer at start-up; MIA_TF_CONNECT_SECONDS overrides


def make_strategy(name="default", devices=None):
    """A tf.distribute strategy by name (see the module docstring).

    `multiworker` must be made before TensorFlow runs anything else in the process (TensorFlow
    configures collective ops at start-up), so commands make the strategy first. It checks
    TF_CONFIG, then waits up to CONNECT_SECONDS (or $MIA_TF_CONNECT_SECONDS) for every worker to
    answer (`wait_for_workers`); one that does not is a UsageError (one line, exit status 2)
    rather than a hang.
    """
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if devices is None:
            gpus = tf.config.list_logical_devices("GPU")
            devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multiworker":
        workers, index = read_tf_config(os.environ.get("TF_CONFIG"))
        seconds = os.environ.get("MIA_TF_CONNECT_SECONDS", str(CONNECT_SECONDS))
        try:
            seconds = float(seconds)
        except ValueError:
            raise UsageError(f"MIA_TF_CONNECT_SECONDS must be a number of seconds, got {seconds!r}") from None
        wait_for_workers(workers, index, seconds)
        # A worker that vanished since it answered would leave TensorFlow's start-up waiting for ever,
        # holding the interpreter (no Python timer can run): faulthandler's own thread ends it.
        faulthandler.dump_traceback_later(seconds, exit=True)
        try:
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
            tf.function(lambda: strategy.reduce("SUM", strategy.run(lambda: tf.constant(1)), axis=None))()  # all answer
        except (RuntimeError, ValueError) as e:
            raise UsageError(f"cannot start worker {index} of {len(workers)} ({str(e).splitlines()[0]}): "
                             "make the strategy before any other TensorFlow work") from None
        finally:
            faulthandler.cancel_dump_traceback_later()
        return strategy
    raise UsageError(f"unknown strategy {name!r}: use one of {', '.join(STRATEGIES)}")


def read_tf_config(text):
    """(worker addresses, this task's index) from TF_CONFIG's JSON; a UsageError saying what is wrong."""
    example = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:port", "host2:port"]}, '
               '"task": {"type": "worker", "index": 0}}\'')
    if not text:
        raise UsageError(f"strategy multiworker needs TF_CONFIG on every worker, e.g. {example}")
    try:
        config = json.loads(text)
        workers, task = config["cluster"]["worker"], config["task"]
        kind, index = task["type"], task["index"]
    except (ValueError, KeyError, TypeError) as e:
        raise UsageError(f"TF_CONFIG is not a cluster description ({type(e).__name__}: {e}): "
                         f"give one like {example}") from None
    if set(config["cluster"]) != {"worker"} or kind != "worker":
        raise UsageError(f"TF_CONFIG may list only workers (the first is the chief), got "
                         f"{sorted(config['cluster'])} and task type {kind!r}")
    if not isinstance(workers, list) or not workers or not all(
            isinstance(w, str) and w.rpartition(":")[2].isdigit() for w in workers):
        raise UsageError(f"TF_CONFIG's workers must be a list of host:port strings, got {workers!r}")
    if not isinstance(index, int) or not 0 <= index < len(workers):
        raise UsageError(f"TF_CONFIG's task index must be 0 to {len(workers) - 1}, got {index!r}")
    return workers, index


def loopback_cluster(count):
    """TF_CONFIG values (dicts) for `count` workers on 127.0.0.1, at ports free now: a cluster on one
    machine, for tests and benchmarks."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    workers = [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]
    for s in sockets:
        s.close()
    return [{"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}} for i in range(count)]


def wait_for_workers(workers, index, seconds):
    """Return once every other worker's address takes a TCP connection; a UsageError after `seconds`.

    TensorFlow's own start-up waits for absent workers for ever while holding the interpreter, so
    this rendezvous comes first: each worker listens on its own port (TensorFlow's server takes the
    port over right after) and knocks on everyone else's until all answer.
    """
    port = int(workers[index].rpartition(":")[2])
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("", port))
    except OSError as e:
        listener.close()
        raise UsageError(f"worker {index} cannot listen on port {port} ({e.strerror}): free it or give this "
                         "worker another address in TF_CONFIG") from None
    listener.listen()
    listener.settimeout(0.2)
    stop = threading.Event()

    def answer():
        while not stop.is_set():
            try:
                listener.accept()[0].close()
            except OSError:  # the timeout, to look at `stop` again
                pass

    answering = threading.Thread(target=answer, daemon=True)
    answering.start()
    deadline = time.monotonic() + seconds
    try:
        for other, address in enumerate(workers):
            host, _, other_port = address.rpartition(":")
            while other != index:
                try:
                    socket.create_connection((host, int(other_port)), timeout=2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise UsageError(f"worker {index} could not reach worker {other} at {address} within "
                                         f"{seconds:.0f} s: start every worker of TF_CONFIG (each with its own "
                                         "task index), or check the addresses") from None
                    time.sleep(0.2)
    finally:
        stop.set()
        answering.join()
        listener.close()


def is_chief(strategy):
    """Whether this process writes: always, but for the non-chief workers of `multiworker`."""
    return strategy is None or strategy.extended.should_checkpoint


def worker_count_and_index(strategy):
    resolver = getattr(strategy, "cluster_resolver", None) if strategy is not None else None
    if resolver is None or not resolver.cluster_spec().as_dict():
        return 1, 0
    return len(resolver.cluster_spec().as_dict()["worker"]), resolver.task_id


def writable_dirs(strategy, *dirs):
    """`dirs` as given (None: the command's default) for the chief; for any other worker as many
    fresh temporary directories, removed when the process exits: they take its copies of results,
    checkpoints and caches, which nobody reads. Always a tuple, one per argument."""
    if is_chief(strategy):
        return dirs
    temporary = tuple(tempfile.mkdtemp(prefix="mia_tf_worker_") for _ in dirs)
    for directory in temporary:
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return temporary


def scope(strategy):
    """`strategy.scope()`, or no scope for None (the default device)."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def broadcast_from_chief(strategy, variables):
    """Give every worker the chief's values of `variables`. Needed after the chief alone restored a backup."""
    if worker_count_and_index(strategy)[0] == 1 or not variables:
        return
    for variable, value in zip(variables, _sum_over_replicas(strategy, variables, lambda replica_id: replica_id == 0)):
        variable.assign(value)


def sharded(strategy, attack, *arrays):
    """`attack(*shares)` on this worker's contiguous share of each array (None stays None), its
    results gathered from every worker in order: the whole (N, ...) array, on every worker.
    Victims are independent in rMLE, so N victims on W workers take about 1/W of the time."""
    total = len(arrays[0])
    count, index = worker_count_and_index(strategy)
    if total < count:
        raise UsageError(f"{total} victims for {count} workers: give every worker at least one")
    start, stop = shard(total, count, index)
    local = np.asarray(attack(*(None if array is None else array[start:stop] for array in arrays)), np.float32)
    if count == 1:
        return local
    whole = np.zeros((total, *local.shape[1:]), np.float32)
    whole[start:stop] = local
    local_replicas = strategy.num_replicas_in_sync // count  # one replica of each worker adds its share
    return _sum_over_replicas(strategy, [whole], lambda replica_id: replica_id % local_replicas == 0)[0].numpy()


def _sum_over_replicas(strategy, values, contributes):
    """The sum over replicas of `values` from those whose id `contributes(id)` says (zeros from the
    rest): one all-reduce per dtype, as an all-reduce packs tensors of one type together."""
    import tensorflow as tf

    @tf.function
    def summed():
        def contribute():
            replica = tf.distribute.get_replica_context()
            mine = contributes(replica.replica_id_in_sync_group)
            tensors = [tf.convert_to_tensor(v) for v in values]
            offered = [tf.where(mine, t, tf.zeros_like(t)) for t in tensors]
            sums = {}
            for dtype in {t.dtype for t in tensors}:
                group = [i for i, t in enumerate(tensors) if t.dtype == dtype]
                sums |= dict(zip(group, replica.all_reduce("SUM", [offered[i] for i in group])))
            return [sums[i] for i in range(len(tensors))]

        return strategy.experimental_local_results(strategy.run(contribute))[0]

    return summed()


def shard(total, count, index):
    """(start, stop) of worker `index`'s contiguous share of `total` items."""
    bounds = np.linspace(0, total, count + 1).round().astype(int)
    return int(bounds[index]), int(bounds[index + 1])


def fit(model, dataset, epochs, loss, strategy=None, callbacks=(), verbose=0, accuracy=False,
        validation=None, validation_freq=1):
    """Train `model` on the (inputs, targets) batches of `dataset` for `epochs`; the history dict.

    `dataset` is a tf.data.Dataset, or a function of the epoch number returning one: then an epoch
    sees the same batches whether the run started at epoch 0 or resumed there.

    `model` was compiled under `scope(strategy)` with its optimizer (which callbacks such as a
    learning-rate schedule change); `loss` is a Keras loss (name, function or object) averaged
    over every example of a global batch. `accuracy` adds top-1 accuracy for integer labels.
    `validation` (batches of (inputs, labels)) is scored every `validation_freq` epochs as
    val_loss (and val_accuracy), on each worker alone. A callback restoring a backup (see
    `mia_tf.backup`) sets the epoch to start from, which the chief's restore decides for all.
    """
    import keras
    import tensorflow as tf

    strategy = strategy or tf.distribute.get_strategy()
    optimizer = model.optimizer
    per_example_loss = _per_example(loss)
    with strategy.scope():
        if not optimizer.built:  # its slots must exist on every worker before the chief's are broadcast
            optimizer.build(model.trainable_variables)
        start_epoch = tf.Variable(0, dtype=tf.int64, trainable=False)

    def step(x, y):
        replica = tf.distribute.get_replica_context()
        with tf.GradientTape() as tape:
            predictions = tf.cast(model(x, training=True), tf.float32)
            per_example = per_example_loss(y, predictions)
            count = tf.cast(tf.shape(per_example)[0], tf.float32)
            global_count = tf.stop_gradient(replica.all_reduce("SUM", count))
            batch_loss = tf.reduce_sum(per_example) / tf.maximum(global_count, 1.0)
            if model.losses:
                batch_loss += tf.add_n(model.losses) / strategy.num_replicas_in_sync
            scaled = optimizer.scale_loss(batch_loss)
        gradients = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return tf.reduce_sum(per_example), count, _correct(y, predictions) if accuracy else tf.constant(0.0)

    # (loss sum, examples, correct) of the epoch so far, kept on the device: reading them back every
    # step would wait for each step to finish (a fifth of an epoch's time on MNIST on a CPU)
    totals = tf.Variable(tf.zeros(3), trainable=False)

    @tf.function
    def train_step(batch):
        totals.assign_add(tf.stack([strategy.reduce("SUM", total, axis=None) for total in strategy.run(step, args=batch)]))

    @tf.function
    def validation_step(x, y):
        predictions = tf.cast(model(x, training=False), tf.float32)
        return tf.reduce_sum(per_example_loss(y, predictions)), tf.cast(tf.shape(x)[0], tf.float32), _correct(y, predictions)

    history = keras.callbacks.History()
    callback_list = keras.callbacks.CallbackList([*callbacks, history], add_progbar=verbose != 0, model=model,
                                                 epochs=epochs, steps=_cardinality(_for_epoch(dataset, 0)),
                                                 verbose=verbose)
    model.stop_training, model._initial_epoch = False, None  # Keras' BackupAndRestore sets _initial_epoch
    callback_list.on_train_begin()
    start_epoch.assign(model._initial_epoch or 0)
    broadcast_from_chief(strategy, [*model.weights, *optimizer.variables, start_epoch])
    for epoch in range(int(start_epoch.numpy()), epochs):
        callback_list.on_epoch_begin(epoch)
        totals.assign(tf.zeros(3))
        distributed = strategy.experimental_distribute_dataset(_shard_by_data(_for_epoch(dataset, epoch)))
        for batch_number, batch in enumerate(distributed):
            callback_list.on_train_batch_begin(batch_number)
            train_step(batch)
            # only a progress bar (verbose 1) shows the running scores
            callback_list.on_train_batch_end(batch_number, _scores("", totals.numpy(), accuracy) if verbose == 1 else None)
        logs = _scores("", totals.numpy(), accuracy)
        if validation is not None and (epoch + 1) % validation_freq == 0:
            validation_totals = np.zeros(3)
            for x, y in validation:
                validation_totals += [float(t) for t in validation_step(x, y)]
            logs |= _scores("val_", validation_totals, accuracy)
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end()
    return history.history


def _per_example(loss):
    """A Keras loss as a function (targets, predictions) -> one mean value per example."""
    import keras
    import tensorflow as tf

    loss = keras.losses.get(loss) if isinstance(loss, str) else loss
    call = loss.call if isinstance(loss, keras.losses.Loss) else loss  # unreduced

    def per_example(targets, predictions):
        values = call(targets, predictions)
        return tf.reduce_mean(tf.reshape(values, [tf.shape(values)[0], -1]), axis=1)

    return per_example


def _correct(labels, logits):
    import tensorflow as tf

    predicted = tf.argmax(logits, axis=-1, output_type=tf.int64)
    return tf.reduce_sum(tf.cast(predicted == tf.cast(tf.reshape(labels, [-1]), tf.int64), tf.float32))


def _scores(prefix, totals, accuracy):
    loss_sum, count, correct = totals
    scores = {f"{prefix}loss": loss_sum / max(count, 1)}
    if accuracy:
        scores[f"{prefix}accuracy"] = correct / max(count, 1)
    return scores


def _for_epoch(dataset, epoch):
    return dataset(epoch) if callable(dataset) else dataset


def _cardinality(dataset):
    steps = int(dataset.cardinality())
    return steps if steps >= 0 else None


def _shard_by_data(dataset):
    """Every worker reads the whole pipeline and keeps its share of each batch: these data sets come
    from arrays and generators, not files, so TensorFlow's default (shard by file) cannot apply."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
