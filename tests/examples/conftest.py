"""Shared fixtures of the examples' tests: import an example script by name, and one faiss thread."""

import importlib.util
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def load_example():
    """``load_example("reproduce_mnist")``: the example script as a module (examples/ is not a package)."""
    return _load


@pytest.fixture(scope="module", autouse=True)
def _one_faiss_thread():
    """faiss's OpenMP pool oversubscribes the shared test machine (a 1,000-row PCA index: 12 s vs 1 s)."""
    try:
        import faiss
    except ImportError:  # not every example needs it
        yield
        return
    n = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(n)
