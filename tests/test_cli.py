import os
import socket

from mia_tf import data

from conftest import mia_tf, mia_tf_in_process


def test_help_explains_every_verb():
    result = mia_tf_in_process("--help")  # fire writes help to stderr when it is not a terminal
    assert result.returncode == 0
    for verb in ("whitebox", "export", "serve", "train", "evaluate", "layers"):
        assert verb in result.stdout + result.stderr
    result = mia_tf_in_process("train", "--help")
    train_help = result.stdout + result.stderr
    for option in ("DATASET", "--epochs", "--strategy", "--out", "--data-dir", "--limit", "--batch-size"):
        assert option in train_help
    result = mia_tf_in_process("serve", "--help")
    serve_help = result.stdout + result.stderr
    for option in ("--host", "127.0.0.1", "--intercept-log", "--max-body-bytes"):
        assert option in serve_help


def test_layers_prints_every_split_point():
    result = mia_tf("layers", "--model", "lenet_mnist")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[3:]}
    assert rows["relu2"][1:3] == ["8x8x16", "4096"]
    assert list(rows) == ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten",
                          "fc1", "fc1act", "fc2", "fc2act"]


def test_evaluate_on_the_shipped_sample_and_the_full_test_set(data_dir):
    result = mia_tf_in_process("evaluate", "--model", "lenet_mnist")
    assert result.returncode == 0, result.stderr
    assert "shipped sample (test images 0-999)" in result.stdout and "99.60 %" in result.stdout
    result = mia_tf_in_process("evaluate", "--model", "lenet_mnist", "--data-dir", data_dir)
    assert "full test set (10000 images)" in result.stdout and "99.50 %" in result.stdout


def _one_line_error(result, *fragments):
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mia_tf: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path):
    # one real process shows what a user sees; the rest run in-process (same code and exit code)
    _one_line_error(mia_tf("evaluate", "--dataset", "svhn"), "unknown data set 'svhn'")
    _one_line_error(mia_tf_in_process("layers", "--model", str(data.sample_path("mnist"))), "not a .keras model file")
    junk = tmp_path / "model.keras"
    junk.write_text("hello")
    _one_line_error(mia_tf_in_process("layers", "--model", str(junk)), "not a loadable Keras model")
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out" / "run"
    _one_line_error(mia_tf_in_process("train", "--dataset", "mnist", "--data-dir", str(empty), "--out", str(out)),
                    "mnist.npz not found")
    _one_line_error(mia_tf_in_process("train", "--dataset", "mnist", "--out", str(tmp_path / "m.weights.h5")),
                    "out is a directory")
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


def test_options_are_checked_before_any_work(tmp_path):
    out = tmp_path / "run"
    # a misspelt option used to run the whole default attack and complain only afterwards
    _one_line_error(mia_tf("whitebox", "--layer", "relu2", "--stpes", "10", "--out", str(out)),
                    "whitebox has no option --stpes (did you mean --steps?)")
    _one_line_error(mia_tf_in_process("whitebox", "--steps", "10"), "whitebox needs --layer")
    _one_line_error(mia_tf_in_process("whitebox", "relu2"), "bare word 'relu2'")
    _one_line_error(mia_tf_in_process("whitebx", "--layer", "relu2"), "unknown verb 'whitebx' (did you mean whitebox?)")
    _one_line_error(mia_tf_in_process("evaluate", "--full=maybe"), "--full takes true or false")
    _one_line_error(mia_tf_in_process("evaluate", "--model", "a", "--model", "b"), "--model is given twice")
    _one_line_error(mia_tf_in_process("serve", "--layer"), "--layer needs a value")
    assert not out.exists()
    # fire read --full=false as the (true) string "false": now it is the boolean, so the sample is scored
    result = mia_tf_in_process("evaluate", "--model", "lenet_mnist", "--full=false")
    assert result.returncode == 0 and "shipped sample" in result.stdout, result.stderr
    help_text = mia_tf_in_process("whitebox", "--help").stdout
    assert "--learning-rate" in help_text and "--learning_rate" not in help_text
