"""Cut a Keras model into the device half (head) and the cloud half (tail).

`split(model, "relu22")` returns `(head, tail)` with `tail(head(x)) == model(x)`. It works for
functional and (built) Sequential models whenever the named layer's output is the only tensor
that crosses the cut: a layer inside a residual block, whose input also skips past it, is not a
split point, and the error lists the layers that are. Subclassed models have no graph to cut.
"""

import dataclasses

import numpy as np

from mia_tf.errors import UsageError


@dataclasses.dataclass(frozen=True)
class SplitPoint:
    layer: str
    feature_shape: tuple  # per image, without the batch axis
    bytes_per_image: int  # of the features sent to the cloud, in their dtype
    head_flops: int  # 2 x multiply-adds of the head's convolutions and dense layers


def _graph_tensors(model):
    """(input tensor, output tensor) of a single-input, single-output graph model, or an error."""
    inputs, outputs = getattr(model, "inputs", None), getattr(model, "outputs", None)
    if not inputs or not outputs:
        raise UsageError(
            f"model {model.name!r} has no layer graph to cut (a subclassed model, or a Sequential "
            f"model that was never built): rebuild it with the functional API, or give the "
            f"Sequential model a keras.Input first. No split points are possible."
        )
    if len(inputs) != 1 or len(outputs) != 1:
        raise UsageError(f"model {model.name!r} has {len(inputs)} inputs and {len(outputs)} outputs: "
                         f"split needs one of each")
    return inputs[0], outputs[0]


def _try_split(model, layer):
    """(head, tail) if `layer` is a valid cut, else None."""
    import keras

    model_input, model_output = _graph_tensors(model)
    cut = _output_in(model, layer)
    if cut is None or cut is model_input or cut is model_output:
        return None  # no single output here, or nothing left for one of the halves
    try:
        tail = keras.Model(cut, model_output, name=f"{model.name}_tail_{layer.name}")
    except ValueError:  # Keras: the output depends on more than `cut`
        return None
    head = keras.Model(model_input, cut, name=f"{model.name}_head_{layer.name}")
    return head, tail


def _output_in(model, layer):
    """The one tensor `layer` produces inside `model`, or None (used twice, or several outputs).

    Looked up in the model's own graph nodes, not `layer.output`: building a tail from an
    intermediate tensor makes Keras add nodes to the layers it clones from.
    """
    # Keras 3 Functional keeps its graph in _nodes_by_depth (depth -> nodes); a built Sequential
    # model keeps an equivalent Functional model in _functional.
    graph = getattr(model, "_functional", None) or model
    nodes = [n for depth in graph._nodes_by_depth.values() for n in depth if n.operation is layer]
    if len(nodes) != 1 or len(nodes[0].outputs) != 1:
        return None
    return nodes[0].outputs[0]


def split_points(model):
    """Every layer where `split` works, in graph order, with feature shape, bytes and head FLOPs."""
    points = []
    for layer in model.layers:
        halves = _try_split(model, layer)
        if halves is None:
            continue
        head = halves[0]
        shape = tuple(int(d) for d in head.output.shape[1:])
        itemsize = np.dtype(head.output.dtype).itemsize
        points.append(SplitPoint(layer.name, shape, int(np.prod(shape)) * itemsize, head_flops(head)))
    return points


def split(model, layer):
    """Cut `model` after `layer` (a layer name); returns (head, tail) Keras models.

    Raises UsageError (a ValueError) naming the valid split points if `layer` is not one.
    """
    _graph_tensors(model)
    names = [l.name for l in model.layers]
    halves = None
    if layer in names:
        halves = _try_split(model, model.get_layer(layer))
    if halves is not None:
        return halves
    valid = [p.layer for p in split_points(model)]
    nested = [l.name for l in model.layers if hasattr(l, "layers") and layer in [s.name for s in l.layers]]
    if nested:
        why = f"layer {layer!r} is inside the nested model {nested[0]!r}; split at {nested[0]!r} instead"
    elif layer in names:
        why = f"layer {layer!r} cannot be a split point (another tensor crosses the cut, or nothing is left for the tail)"
    else:
        why = f"model {model.name!r} has no layer {layer!r}"
    raise UsageError(f"{why}. Valid split points: {', '.join(valid) or 'none'}")


def head_flops(head):
    """2 x multiply-adds of the convolution and dense layers in `head` (activations, pooling not counted)."""
    from keras import layers

    flops = 0
    for layer in head.layers:
        if isinstance(layer, (layers.Conv1D, layers.Conv2D, layers.Conv3D)) and not isinstance(
            layer, (layers.Conv1DTranspose, layers.Conv2DTranspose, layers.Conv3DTranspose)
        ):
            out = np.prod(layer.output.shape[1:])
            kernel = layer.kernel.shape  # (*window, in / groups, out)
            flops += 2 * int(out) * int(np.prod(kernel[:-1]))
        elif isinstance(layer, layers.DepthwiseConv2D):
            kernel = layer.kernel.shape  # (kh, kw, in, multiplier)
            flops += 2 * int(np.prod(layer.output.shape[1:])) * int(kernel[0] * kernel[1])
        elif isinstance(layer, layers.Dense):
            positions = int(np.prod(layer.output.shape[1:-1]))
            flops += 2 * positions * int(np.prod(layer.kernel.shape))
    return flops
