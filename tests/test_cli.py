import os
import socket

from conftest import REFERENCE_WEIGHTS, mia_tf, mia_tf_in_process


def test_help_explains_every_verb():
    result = mia_tf_in_process("--help")  # fire writes help to stderr when it is not a terminal
    assert result.returncode == 0
    for verb in ("whitebox", "export", "serve", "train", "evaluate", "layers"):
        assert verb in result.stdout + result.stderr
    result = mia_tf_in_process("train", "--help")
    train_help = result.stdout + result.stderr
    for option in ("DATASET", "--epochs", "--strategy", "--checkpoint_dir", "--data_dir", "--limit"):
        assert option in train_help
    result = mia_tf_in_process("serve", "--help")
    serve_help = result.stdout + result.stderr
    for option in ("--host", "127.0.0.1", "--intercept_log", "--max_body_bytes"):
        assert option in serve_help


def test_layers_prints_every_split_point():
    result = mia_tf("layers", "--model", "he2019_lenet")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[3:]}
    assert rows["relu2"][1:3] == ["8x8x16", "4096"]
    assert list(rows) == ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten",
                          "fc1", "fc1act", "fc2", "fc2act"]


def test_evaluate_on_the_shipped_sample_and_the_full_test_set(data_dir):
    result = mia_tf("evaluate", "--model", "he2019_lenet")
    assert result.returncode == 0, result.stderr
    assert "shipped sample (test images 0-999)" in result.stdout and "98.50 %" in result.stdout
    result = mia_tf("evaluate", "--model", "he2019_lenet", "--full", "--data-dir", data_dir)
    assert "full test set (10000 images)" in result.stdout and "99.01 %" in result.stdout


def _one_line_error(result, *fragments):
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mia_tf: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path):
    # one real process shows what a user sees; the rest run in-process (same code and exit code)
    _one_line_error(mia_tf("evaluate", "--dataset", "svhn"), "unknown data set 'svhn'")
    _one_line_error(mia_tf_in_process("layers", "--model", str(REFERENCE_WEIGHTS)), "not a .keras model file")
    junk = tmp_path / "model.keras"
    junk.write_text("hello")
    _one_line_error(mia_tf_in_process("layers", "--model", str(junk)), "not a loadable Keras model")
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out" / "m.weights.h5"
    _one_line_error(mia_tf_in_process("train", "--dataset", "mnist", "--data-dir", str(empty), "--out", str(out)),
                    "mnist.npz not found")
    _one_line_error(mia_tf_in_process("evaluate", "--dataset", "cifar10", "--model", "lenet_mnist"),
                    "is for mnist, not cifar10")
    assert not out.exists() and not (tmp_path / "log").exists() and sorted(os.listdir(tmp_path)) == ["empty", "model.keras"]


def test_export_and_serve_refuse_bad_input_before_work(tmp_path):
    out = tmp_path / "exports"
    _one_line_error(mia_tf_in_process("export", "--layer", "relu2", "--dataset", "mnist", "--variant", "int4",
                                      "--out", str(out)), "unknown variant 'int4'")
    _one_line_error(mia_tf_in_process("export", "--layer", "relu9", "--dataset", "mnist", "--out", str(out)), "relu9")
    # int8 calibrates on training images: none without --data-dir or a network
    _one_line_error(mia_tf_in_process("export", "--layer", "relu2", "--dataset", "mnist", "--variant", "int8",
                                      "--out", str(out)), "not available")
    _one_line_error(mia_tf_in_process("serve", "--layer", "relu2", "--dataset", "mnist", "--port", "99999"),
                    "--port must be a whole number from 0 to 65535")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        _one_line_error(mia_tf_in_process("serve", "--layer", "relu2", "--dataset", "mnist", "--port",
                                          str(busy.getsockname()[1]), "--intercept-log", str(tmp_path / "log")),
                        "cannot listen", "pick another --port")
    assert not out.exists() and not (tmp_path / "log").exists()
