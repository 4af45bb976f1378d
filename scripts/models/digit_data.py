"""Where the MNIST and Fashion-MNIST IDX files live, for the project's scripts, examples and benchmarks.

MNIST: .venv/share/datasets/mnist in the repository (scripts/models/fetch_mnist.py puts it there);
Fashion-MNIST: Debian's /usr/share/datasets/fashion-mnist. $MNIST_DIR and $FASHION_MNIST_DIR override them.
Both hold {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz.
"""
import os

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir))
DIRS = {
    "mnist": os.environ.get("MNIST_DIR", os.path.join(ROOT, ".venv", "share", "datasets", "mnist")),
    "fashion": os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"),
}
TITLES = {"mnist": "MNIST", "fashion": "Fashion-MNIST"}


def path(dataset, name):
    """The file `name` (e.g. "t10k-images-idx3-ubyte.gz") of `dataset` ("mnist" or "fashion")."""
    return os.path.join(DIRS[dataset], name)
