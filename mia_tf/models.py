"""The paper's target models as Keras functional models, their shipped weights, and model loading.

Layer names follow ../shared/PAPER.md in lower case, so `split(model, "relu22")` means the same
split point as in the paper's tables. Models take inputs in the normalised space of
`mia_tf.data.normalize`; the de-normalisation happens only for metrics and pictures.

The zoo:
- `lenet_mnist`: the authors' LeNet variant, trained by `python -m mia_tf train --dataset mnist`.
- `cifar10_cnn`: the paper's CIFAR-10 CNN, trained by `python -m mia_tf train --dataset cifar10`.
- `he2019_lenet`: the same LeNet with the authors' own trained weights
  (../shared/reference/he2019_lenet_mnist_weights.npz, converted from PyTorch layouts).
"""

import dataclasses
import os
from importlib import resources

import numpy as np

from mia_tf.errors import UsageError

REFERENCE_WEIGHTS_ENV = "MIA_TF_REFERENCE_WEIGHTS"
DEFAULT_REFERENCE_WEIGHTS = os.path.join("..", "shared", "reference", "he2019_lenet_mnist_weights.npz")


def lenet_mnist():
    """MNIST LeNet (authors' variant): 28x28x1 -> 10 logits, no padding."""
    import keras
    from keras import layers

    x = inputs = keras.Input((28, 28, 1), name="image")
    x = layers.Conv2D(8, 5, name="conv1")(x)
    x = layers.ReLU(name="relu1")(x)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(16, 5, name="conv2")(x)
    x = layers.ReLU(name="relu2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(120, name="fc1")(x)
    x = layers.ReLU(name="fc1act")(x)
    x = layers.Dense(84, name="fc2")(x)
    x = layers.ReLU(name="fc2act")(x)
    outputs = layers.Dense(10, name="fc3")(x)
    return keras.Model(inputs, outputs, name="lenet_mnist")


def cifar10_cnn():
    """The paper's CIFAR-10 CNN: six 3x3 same-padded convs, three pools, fc 512 (sigmoid), fc 10."""
    import keras
    from keras import layers

    x = inputs = keras.Input((32, 32, 3), name="image")
    for block, filters in ((1, 64), (2, 128), (3, 128)):
        for conv in (1, 2):
            x = layers.Conv2D(filters, 3, padding="same", name=f"conv{block}{conv}")(x)
            x = layers.ReLU(name=f"relu{block}{conv}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{block}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(512, name="fc1")(x)
    x = layers.Activation("sigmoid", name="fc1act")(x)
    outputs = layers.Dense(10, name="fc2")(x)
    return keras.Model(inputs, outputs, name="cifar10_cnn")


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    name: str
    dataset: str
    build: callable
    weights_file: str  # inside mia_tf/zoo/, or None when the weights come from elsewhere
    description: str


ZOO = {
    "lenet_mnist": ZooEntry("lenet_mnist", "mnist", lenet_mnist, "lenet_mnist.weights.h5",
                            "LeNet trained by mia_tf (python -m mia_tf train --dataset mnist)"),
    "cifar10_cnn": ZooEntry("cifar10_cnn", "cifar10", cifar10_cnn, "cifar10_cnn.weights.h5",
                            "CIFAR-10 CNN trained by mia_tf (python -m mia_tf train --dataset cifar10)"),
    "he2019_lenet": ZooEntry("he2019_lenet", "mnist", lenet_mnist, None,
                             "LeNet with the paper authors' own weights (../shared/reference)"),
}
DEFAULT_MODEL = {"mnist": "lenet_mnist", "cifar10": "cifar10_cnn"}


def zoo_weights_path(name):
    """Path of a zoo model's shipped weights file (which may not exist yet)."""
    return str(resources.files("mia_tf") / "zoo" / ZOO[name].weights_file)


def load_he2019_lenet(path=None):
    """The authors' trained LeNet, converted from PyTorch layouts; scores 99.01 % on MNIST test.

    Args:
      path: the reference npz; defaults to $MIA_TF_REFERENCE_WEIGHTS, else
        ../shared/reference/he2019_lenet_mnist_weights.npz from the working directory.
    """
    from mia_tf.data import read_npz

    path = path or os.environ.get(REFERENCE_WEIGHTS_ENV) or DEFAULT_REFERENCE_WEIGHTS
    if not os.path.exists(path):
        raise UsageError(f"the authors' LeNet weights are not shipped (no licence) and not found at {path}: set "
                         f"${REFERENCE_WEIGHTS_ENV} to their he2019_lenet_mnist_weights.npz (docs/models.md)")
    names = ["conv1", "conv2", "fc1", "fc2", "fc3"]
    keys = [f"{n}.{p}" for n in names for p in ("weight", "bias")]
    arrays = dict(zip(keys, read_npz(path, "reference LeNet", keys)))
    model = lenet_mnist()
    for n in names:
        kernel, bias = arrays[f"{n}.weight"], arrays[f"{n}.bias"]
        if n.startswith("conv"):
            kernel = kernel.transpose(2, 3, 1, 0)  # OIHW -> HWIO
        elif n == "fc1":
            # PyTorch flattens pool2 channel-first (c, h, w); Keras flattens (h, w, c).
            kernel = kernel.reshape(120, 16, 4, 4).transpose(2, 3, 1, 0).reshape(256, 120)
        else:
            kernel = kernel.T
        try:
            model.get_layer(n).set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
        except ValueError as e:
            raise UsageError(f"{path}: {n} has the wrong shape for the authors' LeNet ({e})") from None
    return model


def load_model(model=None, dataset=None):
    """A Keras model from a zoo name or a `.keras` file (loaded in Keras safe mode).

    Args:
      model: a zoo name (lenet_mnist, cifar10_cnn, he2019_lenet) or a path to a `.keras` file;
        None picks the data set's default zoo model.
      dataset: used only to pick the default model.
    Returns:
      (keras model, dataset name or None if unknown, short description of where it came from).
    """
    if model is None:
        from mia_tf.data import spec

        model = DEFAULT_MODEL[spec(dataset).name]
    if model in ZOO:
        entry = ZOO[model]
        if entry.weights_file is None:
            return load_he2019_lenet(), entry.dataset, entry.name
        path = zoo_weights_path(model)
        if not os.path.exists(path):
            raise UsageError(
                f"the zoo model {model} has no shipped weights yet ({path}): train it with "
                f"python -m mia_tf train --dataset {entry.dataset}"
            )
        keras_model = entry.build()
        keras_model.load_weights(path)
        return keras_model, entry.dataset, entry.name
    return _load_model_file(model), dataset, os.path.basename(str(model))


def resolve_model(model=None, dataset=None):
    """(keras model, dataset name, label) from a CLI's --model / --dataset, checking they agree.

    Either may be None (not both): a zoo model knows its data set, a data set picks its default
    zoo model, and a `.keras` file needs --dataset. The model's input must fit the data set.
    """
    from mia_tf.data import spec

    if model is None and dataset is None:
        raise UsageError("give --dataset (mnist or cifar10) or --model (a zoo name or a .keras file)")
    if dataset is not None:
        dataset = spec(dataset).name
        if model in ZOO and ZOO[model].dataset != dataset:
            raise UsageError(f"model {model} is for {ZOO[model].dataset}, not {dataset}: "
                             f"pass --dataset {ZOO[model].dataset} or pick another model")
    keras_model, model_dataset, label = load_model(model, dataset)
    dataset = dataset or model_dataset
    if dataset is None:
        raise UsageError(f"say which data set {label} takes: add --dataset mnist or --dataset cifar10")
    expected = (None, *spec(dataset).image_shape)
    if tuple(keras_model.input_shape) != expected:
        raise UsageError(f"model {label} takes inputs of shape {keras_model.input_shape}, "
                         f"but {dataset} images are {expected}")
    return keras_model, dataset, label


def weights_sha256(model):
    """SHA-256 over a model's weights (names, shapes and values): the same for any file format."""
    import hashlib

    digest = hashlib.sha256()
    for weight in model.weights:
        value = np.ascontiguousarray(weight.numpy())
        digest.update(f"{weight.path}:{value.shape}:{value.dtype}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _load_model_file(path):
    import keras

    path = str(path)
    if not os.path.exists(path):
        raise UsageError(f"model {path!r} is neither a zoo name ({', '.join(ZOO)}) nor an existing file")
    if not path.endswith(".keras"):
        raise UsageError(f"{path} is not a .keras model file: save the model with model.save('name.keras')")
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as e:  # Keras raises many types for a corrupt or foreign file
        raise UsageError(f"{path} is not a loadable Keras model ({type(e).__name__}: {str(e)[:200]})") from None
