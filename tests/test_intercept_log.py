import struct
import threading

import numpy as np
import pytest

from edge import wire
from mia_tf.errors import UsageError
from mia_tf.intercept_log import InterceptLog, read_features, read_log


def _append(log, array, scale=0.0, zero_point=0, layer="relu2"):
    log.append(wire.encode(array, scale, zero_point), "127.0.0.1:5000", "lenet_mnist_relu2", layer, "binary")


def test_records_come_back_in_order_with_who_sent_them(tmp_path):
    path = tmp_path / "log"
    log = InterceptLog(path)
    floats = np.arange(2 * 4, dtype=np.float32).reshape(2, 4)
    _append(log, floats)
    _append(log, np.array([[-128, 0, 1, 127]], np.int8), 0.5, -128)
    log.close()
    records, torn, refused = read_log(path)
    assert torn == 0 and len(records) == 2
    header, array, scale, zero_point = records[1]
    assert header["client"] == "127.0.0.1:5000" and header["layer"] == "relu2" and header["time"] > 0
    assert array.dtype == np.int8 and (scale, zero_point) == (0.5, -128)
    features, headers = read_features(path, layer="relu2")
    np.testing.assert_array_equal(features, [[0, 1, 2, 3], [4, 5, 6, 7], [0, 64, 64.5, 127.5]])
    assert len(headers) == 2


def test_a_torn_tail_is_skipped_by_readers_and_cut_by_the_next_writer(tmp_path):
    path = tmp_path / "log"
    log = InterceptLog(path)
    for i in range(2):
        _append(log, np.full((1, 4), i, np.float32))
    two_records = path.stat().st_size
    _append(log, np.full((1, 4), 2, np.float32))
    log.close()
    whole = path.read_bytes()
    record_size = len(whole) - two_records  # records differ in length with their time stamps
    for cut in (1, record_size // 2, record_size - 1):  # a crash at any point inside the last write
        path.write_bytes(whole[:-cut])
        records, torn, refused = read_log(path)
        assert len(records) == 2 and torn == record_size - cut
    path.write_bytes(whole[:-5] + b"garbage!")  # the tail overwritten with junk fails its CRC
    assert len(read_log(path)[0]) == 2
    log = InterceptLog(path)  # a restarted server cuts the broken tail before appending
    assert log.truncated_bytes == record_size + 3
    _append(log, np.full((1, 4), 9, np.float32))
    log.close()
    features, _ = read_features(path)
    np.testing.assert_array_equal(features[:, 0], [0, 1, 9])


def test_concurrent_appends_never_interleave(tmp_path):
    path = tmp_path / "log"
    log = InterceptLog(path, durable=False)

    def client(k):
        for i in range(50):
            _append(log, np.full((1, 64), k * 1000 + i, np.float32))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    features, _ = read_features(path)
    assert len(features) == 400 and read_log(path)[1:] == (0, [])
    assert all(np.all(row == row[0]) for row in features)  # every record whole
    assert sorted(features[:, 0]) == sorted(k * 1000 + i for k in range(8) for i in range(50))


def test_bad_logs_and_mismatched_layers_are_clear_errors(tmp_path):
    with pytest.raises(UsageError, match="cannot read the intercept log"):
        read_features(tmp_path / "missing")
    junk = tmp_path / "junk"
    junk.write_bytes(b"not a log at all")
    with pytest.raises(UsageError, match="not a mia_tf intercept log"):
        read_features(junk)
    path = tmp_path / "log"
    log = InterceptLog(path)
    with pytest.raises(UsageError, match="no records yet"):
        read_features(path)
    _append(log, np.zeros((1, 4), np.float32), layer="conv1")
    with pytest.raises(UsageError, match="layer conv1, not relu2: pass --layer conv1"):
        read_features(path, layer="relu2")
    _append(log, np.zeros((1, 5), np.float32), layer="conv1")
    log.close()
    with pytest.raises(UsageError, match="mixes feature shapes"):
        read_features(path)


def test_a_whole_record_the_wire_format_refuses_is_left_out_and_named(tmp_path, capsys):
    path = tmp_path / "log"
    log = InterceptLog(path)
    _append(log, np.zeros((1, 4), np.float32))
    # what an older server logged from a bit-flipped body: a float tensor with a scale of 2.0
    flipped = bytearray(wire.encode(np.ones((1, 4), np.float32)))
    struct.pack_into("<f", flipped, 8, 2.0)
    log.append(bytes(flipped), "127.0.0.1:5000", "m", "relu2", "binary")
    _append(log, np.full((1, 4), 3, np.float32))
    log.close()
    records, torn, refused = read_log(path)
    assert len(records) == 2 and torn == 0 and refused == [(1, "a float32 tensor carries scale 0 and zero point 0, "
                                                                "got 2.0 and 0")]
    with pytest.raises(UsageError, match="1 record\\(s\\) hold tensors the wire format refuses: #1"):
        read_features(path)  # with originals named, the features would no longer line up with them
    features, _ = read_features(path, allow_refused=True)
    np.testing.assert_array_equal(features, [[0, 0, 0, 0], [3, 3, 3, 3]])
    assert "left out" in capsys.readouterr().err
