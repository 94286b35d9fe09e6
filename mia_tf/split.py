"""Cut a Keras model into the device half (head) and the cloud half (tail).

`split(model, "relu22")` returns `(head, tail)` with `tail(head(x)) == model(x)`. It works for
functional and (built) Sequential models whenever the named layer's output is the only tensor
that crosses the cut: a layer inside a residual block, whose input also skips past it, is not a
split point, and the error lists the layers that are. Layers inside a nested model (a
functional or Sequential model used as a layer, as in transfer learning) are split points too,
named "outer/inner" (the bare inner name works when it is unambiguous). Subclassed models have
no graph to cut.
"""

import dataclasses

import numpy as np

from mia_tf.errors import UsageError


@dataclasses.dataclass(frozen=True)
class SplitPoint:
    layer: str  # "name", or "nested_model/name" inside a nested model
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


def _node_in(model, layer):
    """The one graph node where `layer` is called inside `model`, or None (used twice, or never).

    Looked up in the model's own graph, not `layer.output`: building a tail from an intermediate
    tensor makes Keras add nodes to the layers it clones from.
    """
    # Keras 3 Functional keeps its graph in _nodes_by_depth (depth -> nodes); a built Sequential
    # model keeps an equivalent Functional model in _functional.
    graph = getattr(model, "_functional", None) or model
    nodes = [n for depth in graph._nodes_by_depth.values() for n in depth if n.operation is layer]
    return nodes[0] if len(nodes) == 1 else None


def _single_output(node):
    return node.outputs[0] if node is not None and len(node.outputs) == 1 else None


def _rest_of(model, tensor, name):
    """keras.Model(tensor -> model output) if the output depends on `tensor` alone, else None."""
    import keras

    try:
        return keras.Model(tensor, _graph_tensors(model)[1], name=name)
    except ValueError:  # Keras: the output is not connected to `tensor` alone
        return None


def _try_split(model, layer):
    """(head, tail) if the output of the top-level `layer` is a valid cut, else None."""
    import keras

    model_input, model_output = _graph_tensors(model)
    cut = _single_output(_node_in(model, layer))
    if cut is None or cut is model_input or cut is model_output:
        return None  # no single output here, or nothing left for one of the halves
    tail = _rest_of(model, cut, f"{model.name}_tail_{layer.name}")
    if tail is None:
        return None
    return keras.Model(model_input, cut, name=f"{model.name}_head_{layer.name}"), tail


def _try_split_nested(model, nested, inner_name):
    """(head, tail) for a cut inside the nested model `nested` (a top-level layer), else None."""
    import keras

    node = _node_in(model, nested)
    if node is None or len(node.input_tensors) != 1 or _single_output(node) is None:
        return None
    entering, leaving = node.input_tensors[0], _single_output(node)
    model_input = _graph_tensors(model)[0]
    # Everything from `nested` on must depend on what enters it alone, and the rest of the outer
    # model on what leaves it alone: then the inner cut is the only tensor crossing.
    if entering is not model_input and _rest_of(model, entering, "probe") is None:
        return None
    rest = _rest_of(model, leaving, f"{model.name}_after_{nested.name}")
    if rest is None:
        return None
    try:
        inner_head, inner_tail = split(nested, inner_name)
    except UsageError:
        return None
    head = keras.Model(model_input, inner_head(entering), name=f"{model.name}_head_{inner_name}")
    cut = keras.Input(inner_head.output.shape[1:], dtype=inner_head.output.dtype)
    tail = keras.Model(cut, rest(inner_tail(cut)), name=f"{model.name}_tail_{inner_name}")
    return head, tail


def _nested_models(model):
    return [l for l in model.layers if getattr(l, "layers", None) and getattr(l, "outputs", None)]


def split_points(model):
    """Every cut where `split` works, in graph order, with feature shape, bytes and head FLOPs."""
    _graph_tensors(model)
    points = []
    for layer in model.layers:
        candidates = [(layer.name, lambda layer=layer: _try_split(model, layer))]
        if layer in _nested_models(model):
            candidates = [(f"{layer.name}/{p.layer}", lambda layer=layer, p=p: _try_split_nested(model, layer, p.layer))
                          for p in split_points(layer)] + candidates
        for name, attempt in candidates:
            halves = attempt()
            if halves is not None:
                points.append(_describe(name, halves[0]))
    return points


def _describe(name, head):
    shape = tuple(int(d) for d in head.output.shape[1:])
    itemsize = np.dtype(head.output.dtype).itemsize
    return SplitPoint(name, shape, int(np.prod(shape)) * itemsize, head_flops(head))


def split(model, layer):
    """Cut `model` after `layer` (a layer name, or "nested_model/layer"); returns (head, tail).

    Raises UsageError (a ValueError) naming the valid split points if `layer` is not one.
    """
    _graph_tensors(model)
    names = [l.name for l in model.layers]
    outer, _, inner = layer.partition("/")
    holders = [n for n in _nested_models(model) if inner and n.name == outer] or \
              [n for n in _nested_models(model) if not inner and layer in [l.name for l in n.layers]]
    halves = None
    if not inner and layer in names:
        halves = _try_split(model, model.get_layer(layer))
    elif len(holders) == 1:
        halves = _try_split_nested(model, holders[0], inner or layer)
    if halves is not None:
        return halves
    valid = [p.layer for p in split_points(model)]
    if len(holders) > 1:
        why = f"layer {layer!r} is in several nested models; name it as " + \
              " or ".join(f"'{h.name}/{layer}'" for h in holders)
    elif layer in names or holders:
        why = f"layer {layer!r} cannot be a split point (another tensor crosses the cut, or nothing is left for the tail)"
    else:
        why = f"model {model.name!r} has no layer {layer!r}"
    raise UsageError(f"{why}. Valid split points: {', '.join(valid) or 'none'}")


def head_flops(head):
    """2 x multiply-adds of the convolution and dense layers in `head` (activations, pooling not counted)."""
    from keras import layers

    flops = 0
    for layer in head.layers:
        if getattr(layer, "layers", None):  # a nested model
            flops += head_flops(layer)
        elif isinstance(layer, (layers.Conv1D, layers.Conv2D, layers.Conv3D)) and not isinstance(
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
