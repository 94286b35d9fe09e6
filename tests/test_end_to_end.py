"""The whole deployment for real: export, the tail server on loopback, the LiteRT edge runner on
PNG files, then the curious server's white-box attack on its own intercept log."""

import json
import os
import signal

import numpy as np
from PIL import Image

import mia_tf
from conftest import mia_tf as run_cli, start_server


def test_edge_to_cloud_and_back_to_the_image(tmp_path):
    exports = tmp_path / "exports"
    result = run_cli("export", "--layer", "conv1", "--dataset", "mnist", "--variant", "float32", "--notail",
                     "--out", str(exports))
    assert result.returncode == 0, result.stderr
    tflite = exports / "lenet_mnist_conv1_float32.tflite"
    indices, images, labels = mia_tf.victims("mnist", "paper10")
    pngs = []
    for index, image in zip(indices, images):
        pngs.append(str(tmp_path / f"test{index}.png"))
        Image.fromarray(image[..., 0]).save(pngs[-1])

    log = tmp_path / "intercept.log"
    server, url = start_server(log, "--layer", "conv1", "--dataset", "mnist")
    try:
        device = run_cli("run", "--model", str(tflite), "--images", *pngs, "--server", url, "--batch-size", "4",
                         module="edge")
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
    assert device.returncode == 0, device.stderr
    classes = [int(line.split("class ")[1]) for line in device.stdout.splitlines()[1:]]
    model = mia_tf.load_model("lenet_mnist")[0]
    expected = np.argmax(model.predict(mia_tf.normalize(images, "mnist"), verbose=0), axis=1)
    assert classes == expected.tolist() == labels.tolist()

    attack = run_cli("whitebox", "--layer", "conv1", "--preset", "best", "--features", str(log),
                     "--images", "paper10", "--out", str(tmp_path / "attack"))
    assert attack.returncode == 0, attack.stderr
    metrics = json.load(open(tmp_path / "attack" / "metrics.json"))
    assert metrics["victims"] == 10 and metrics["method"] == "exact_linear"
    assert metrics["summary"]["psnr"]["mean"] > 60.0  # the logged features give the images back exactly
    assert os.path.exists(tmp_path / "attack" / "grid.png")

    unscored = run_cli("whitebox", "--layer", "conv1", "--preset", "best", "--features", str(log),
                       "--out", str(tmp_path / "unscored"))
    assert unscored.returncode == 0 and "not scored" in unscored.stdout
    wrong_layer = run_cli("whitebox", "--layer", "relu2", "--features", str(log))
    assert wrong_layer.returncode == 2 and "pass --layer conv1" in wrong_layer.stderr
