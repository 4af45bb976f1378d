"""Real layers for the OPTQ / GPFQ tests: the Fashion-MNIST MLP's weights (tests/data/models/fashion_mlp.onnx)
with the activations real images produce. Images come from Debian's dataset-fashion-mnist (the first 2048
training images) when installed, else from the 128 committed test images (tests/data/README.md)."""
import gzip
import os

import numpy as np

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "data")
DEBIAN_IMAGES = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
SAMPLES = 2048


def images():
    """Float32 [n, 784] pixels / 255, as the model expects."""
    if os.path.exists(DEBIAN_IMAGES):
        with gzip.open(DEBIAN_IMAGES) as f:
            raw = np.frombuffer(f.read(), np.uint8, offset=16)
        pixels = raw[:SAMPLES * 784].reshape(SAMPLES, 784)
    else:
        pixels = np.load(os.path.join(DATA, "models", "fashion_sample.npz"))["images"].reshape(-1, 784)
    return pixels.astype(np.float32) / 255


def mlp_weights():
    """{'fc1.weight': [512, 784], 'fc1.bias': ..., 'fc2.weight': [256, 512], ...} as float32 arrays."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(os.path.join(DATA, "models", "fashion_mlp.onnx"))
    return {t.name: numpy_helper.to_array(t).astype(np.float32) for t in model.graph.initializer}


def relu_layer(x, w, b):
    return np.maximum(x @ w.T + b, 0).astype(np.float32)
