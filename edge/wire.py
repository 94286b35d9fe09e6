"""The compact binary body that carries one feature tensor from the device to the cloud.

JSON (`{"instances": [...]}`) is what TensorFlow Serving speaks, but it spends about ten bytes
of text per float and cannot carry int8 features with their quantisation. This body is the raw
tensor behind a small fixed header, all little-endian:

    magic b"MIAT" | version u8 | dtype code u8 | ndim u8 | reserved u8 | scale f32 | zero_point i32
    | ndim x dim u32 | data (prod(dims) x itemsize bytes, C order)

`scale` and `zero_point` are the TFLite output quantisation of an int8 head (real = scale *
(q - zero_point)); they are 0.0 and 0 for float tensors. The reserved byte is 0. A body whose
header says anything else (a float tensor with a scale, an integer one with a scale that is not a
positive finite number or a zero point outside its type) is refused on decode and never encoded:
the server logs only tensors it can vouch for. The server and the intercept log use the same
functions, so the format is defined here once. Only numpy is needed.
"""

import struct

import numpy as np

CONTENT_TYPE = "application/x-mia-tensor"
MAGIC = b"MIAT"
VERSION = 1
_HEADER = struct.Struct("<4sBBBBfi")
_DTYPES = {1: np.dtype("<f4"), 2: np.dtype("i1"), 3: np.dtype("u1"), 4: np.dtype("<f2")}
_CODES = {dtype: code for code, dtype in _DTYPES.items()}
MAX_NDIM = 8


class WireError(ValueError):
    """A body that is not a well-formed tensor in this format; the message says what is wrong."""


def _check_quantization(dtype, scale, zero_point):
    """WireError unless (scale, zero_point) are parameters a tensor of `dtype` can have."""
    if np.issubdtype(dtype, np.floating):
        if scale != 0.0 or zero_point != 0:
            raise WireError(f"a {dtype.name} tensor carries scale 0 and zero point 0, got {scale} and {zero_point}")
        return
    info = np.iinfo(dtype)
    if not (np.isfinite(scale) and scale > 0):
        raise WireError(f"an {dtype.name} tensor needs a positive finite scale, got {scale}")
    if not info.min <= zero_point <= info.max:
        raise WireError(f"an {dtype.name} tensor's zero point lies in [{info.min}, {info.max}], got {zero_point}")


def encode(array, scale=0.0, zero_point=0):
    """bytes of one tensor (float32, float16, int8 or uint8) with its quantisation parameters."""
    array = np.ascontiguousarray(array)
    dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
    code = _CODES.get(np.dtype(dtype))
    if code is None:
        raise WireError(f"cannot send {array.dtype} tensors: use float32, float16, int8 or uint8")
    if not 1 <= array.ndim <= MAX_NDIM:
        raise WireError(f"a tensor needs 1 to {MAX_NDIM} dimensions, got {array.ndim}")
    scale = float(np.float32(scale))  # as the header will hold it
    _check_quantization(_DTYPES[code], scale, int(zero_point))
    header = _HEADER.pack(MAGIC, VERSION, code, array.ndim, 0, scale, int(zero_point))
    dims = struct.pack(f"<{array.ndim}I", *array.shape)
    return header + dims + array.astype(_DTYPES[code], copy=False).tobytes()


def decode(body):
    """(array, scale, zero_point) from bytes made by `encode`; WireError if malformed."""
    body = memoryview(body)
    if len(body) < _HEADER.size:
        raise WireError(f"body of {len(body)} bytes is shorter than the {_HEADER.size}-byte header")
    magic, version, code, ndim, reserved, scale, zero_point = _HEADER.unpack_from(body)
    if magic != MAGIC:
        raise WireError(f"body does not start with {MAGIC!r}: not a {CONTENT_TYPE} tensor")
    if version != VERSION:
        raise WireError(f"tensor format version {version} is not supported (this side speaks {VERSION})")
    if code not in _DTYPES:
        raise WireError(f"unknown dtype code {code}")
    if reserved != 0:
        raise WireError(f"reserved header byte is {reserved}, not 0")
    _check_quantization(_DTYPES[code], scale, zero_point)
    if not 1 <= ndim <= MAX_NDIM:
        raise WireError(f"a tensor needs 1 to {MAX_NDIM} dimensions, got {ndim}")
    dims_end = _HEADER.size + 4 * ndim
    if len(body) < dims_end:
        raise WireError("body ends inside the shape")
    shape = struct.unpack_from(f"<{ndim}I", body, _HEADER.size)
    dtype = _DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(body) - dims_end != expected:
        raise WireError(f"shape {shape} of {dtype.name} needs {expected} data bytes, "
                        f"the body has {len(body) - dims_end}")
    array = np.frombuffer(body, dtype=dtype, offset=dims_end).reshape(shape)
    return array, float(scale), int(zero_point)


def dequantize(array, scale, zero_point):
    """float32 values of a tensor: integers map through scale and zero point, floats pass through."""
    if np.issubdtype(array.dtype, np.integer):
        if not scale > 0:
            raise WireError(f"an {array.dtype} tensor needs a positive scale, got {scale}")
        return (scale * (array.astype(np.float32) - np.float32(zero_point))).astype(np.float32)
    return array.astype(np.float32)
