import struct

import numpy as np
import pytest

from edge import wire


@pytest.mark.parametrize("dtype, quantization", [("float32", (0.0, 0)), ("float16", (0.0, 0)),
                                                  ("int8", (0.25, -7)), ("uint8", (0.25, 7))])
def test_round_trip_keeps_values_shape_and_quantisation(dtype, quantization):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((3, 8, 8, 16)) * 50).astype(dtype)
    decoded, scale, zero_point = wire.decode(wire.encode(array, *quantization))
    assert decoded.dtype == array.dtype and decoded.shape == array.shape
    np.testing.assert_array_equal(decoded, array)
    assert (scale, zero_point) == quantization


def _with_header(body, offset, fmt, value):
    """`body` with one header field overwritten (a hostile or bit-flipped header)."""
    patched = bytearray(body)
    struct.pack_into(fmt, patched, offset, value)
    return bytes(patched)


FLOAT_BODY = wire.encode(np.zeros((1, 4), np.float32))
INT8_BODY = wire.encode(np.zeros((1, 4), np.int8), 0.5, -3)


@pytest.mark.parametrize("body, message", [
    (_with_header(FLOAT_BODY, 7, "<B", 1), "reserved header byte is 1"),
    (_with_header(FLOAT_BODY, 8, "<f", 2.0), "float32 tensor carries scale 0 and zero point 0"),
    (_with_header(FLOAT_BODY, 12, "<i", -2147483647), "float32 tensor carries scale 0"),
    (_with_header(INT8_BODY, 8, "<f", 0.0), "positive finite scale"),
    (_with_header(INT8_BODY, 8, "<f", float("inf")), "positive finite scale"),
    (_with_header(INT8_BODY, 8, "<f", float("nan")), "positive finite scale"),
    (_with_header(INT8_BODY, 12, "<i", 67108868), r"zero point lies in \[-128, 127\]"),
])
def test_headers_a_tensor_cannot_have_are_refused(body, message):
    with pytest.raises(wire.WireError, match=message):
        wire.decode(body)


def test_parameters_a_tensor_cannot_have_are_never_encoded():
    with pytest.raises(wire.WireError, match="scale 0"):
        wire.encode(np.zeros(3, np.float32), 0.5, 0)
    with pytest.raises(wire.WireError, match="zero point"):
        wire.encode(np.zeros(3, np.uint8), 0.5, 300)


def test_int8_dequantises_through_scale_and_zero_point():
    values = wire.dequantize(np.array([-128, -1, 0, 127], np.int8), 0.5, -1)
    np.testing.assert_array_equal(values, [-63.5, 0.0, 0.5, 64.0])
    with pytest.raises(wire.WireError, match="positive scale"):
        wire.dequantize(np.array([1], np.int8), 0.0, 0)


def test_header_is_small_and_the_body_is_the_raw_tensor():
    array = np.zeros((1, 8, 8, 16), np.int8)
    body = wire.encode(array, 0.1, 0)
    assert len(body) == 16 + 4 * 4 + array.size  # 1 byte per int8 feature, 4 per float in JSON at best


@pytest.mark.parametrize("body, message", [
    (b"", "shorter than"),
    (b"XXXX" + bytes(12), "does not start with"),
    (wire.encode(np.zeros(4, np.float32))[:-1], "needs 16 data bytes, the body has 15"),
    (wire.encode(np.zeros(4, np.float32)) + b"\0", "needs 16 data bytes, the body has 17"),
    (wire.encode(np.zeros((2, 2), np.float32))[:18], "ends inside the shape"),
])
def test_malformed_bodies_say_what_is_wrong(body, message):
    with pytest.raises(wire.WireError, match=message):
        wire.decode(body)


def test_unsupported_dtypes_are_refused():
    with pytest.raises(wire.WireError, match="float64"):
        wire.encode(np.zeros(3, np.float64))
