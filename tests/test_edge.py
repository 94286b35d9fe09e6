"""The device side: no TensorFlow, clear errors on bad input."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, mia_tf
from edge import EdgeError
from edge.images import read_image_files, read_npz_batch


def test_edge_imports_without_tensorflow():
    code = ("import sys, edge.__main__, edge.head, edge.client, edge.images, edge.manifest, edge.wire; "
            "import ai_edge_litert.interpreter; "
            "loaded = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'mia_tf')]; "
            "print(loaded); sys.exit(1 if loaded else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_edge_requirements_name_no_tensorflow():
    lines = [line.split("#")[0].strip().lower() for line in (ROOT / "edge" / "requirements.txt").read_text().splitlines()]
    assert "ai-edge-litert" in lines and not any("tensorflow" in line for line in lines)


def test_images_are_read_as_the_head_expects(tmp_path):
    grey = np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)
    Image.fromarray(grey).save(tmp_path / "a.png")
    Image.fromarray(np.stack([grey] * 3, -1)).save(tmp_path / "rgb.jpg", quality=100)
    images = read_image_files([tmp_path / "a.png", tmp_path / "rgb.jpg"], 28, 28, 1)
    assert images.shape == (2, 28, 28, 1) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[0, ..., 0], grey)
    Image.fromarray(np.zeros((30, 30), np.uint8)).save(tmp_path / "big.png")
    with pytest.raises(EdgeError, match="30x30 pixels, the head takes 28x28"):
        read_image_files([tmp_path / "big.png"], 28, 28, 1)
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(EdgeError, match="cannot read .* as an image"):
        read_image_files([tmp_path / "text.png"], 28, 28, 1)
    np.savez(tmp_path / "batch.npz", images=np.zeros((4, 28, 28), np.uint8))
    assert read_npz_batch(str(tmp_path / "batch.npz"), 28, 28, 1).shape == (4, 28, 28, 1)
    np.savez(tmp_path / "floats.npz", images=np.zeros((4, 28, 28), np.float32))
    with pytest.raises(EdgeError, match="the head takes uint8"):
        read_npz_batch(str(tmp_path / "floats.npz"), 28, 28, 1)


def test_edge_cli_errors_are_one_line_exit_2(tmp_path):
    result = mia_tf("run", "--model", str(tmp_path / "none.tflite"), "--npz", "x.npz", "--server",
                    "http://127.0.0.1:9", module="edge")
    assert result.returncode == 2 and result.stderr.strip().startswith("edge: error: no manifest at")
