"""mia_tf's device side: run an exported head with LiteRT and send its features to the cloud.

This package imports only numpy, Pillow and `ai-edge-litert` (never TensorFlow), so it installs
on a Raspberry Pi or any small Linux box: `pip install -r edge/requirements.txt`.

    python -m edge run --model head.tflite --images a.png b.png --server http://HOST:8501
    python -m edge bench --model head.tflite --npz batch.npz [--server http://HOST:8501]

Modules: `manifest` (what the exporter wrote beside the .tflite), `head` (LiteRT runner),
`images` (PNG/JPEG/npz input), `wire` (the binary feature body), `client` (the HTTP client).
"""


class EdgeError(Exception):
    """Bad input on the device side; the message says what was wrong and what to do."""
