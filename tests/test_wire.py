import numpy as np
import pytest

from edge import wire


@pytest.mark.parametrize("dtype", ["float32", "float16", "int8", "uint8"])
def test_round_trip_keeps_values_shape_and_quantisation(dtype):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((3, 8, 8, 16)) * 50).astype(dtype)
    decoded, scale, zero_point = wire.decode(wire.encode(array, 0.25, -7))
    assert decoded.dtype == array.dtype and decoded.shape == array.shape
    np.testing.assert_array_equal(decoded, array)
    assert (scale, zero_point) == (0.25, -7)


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
