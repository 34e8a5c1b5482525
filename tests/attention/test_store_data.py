"""A nogs store designed on another split, or on canvases made with other options, is refused (naming both)."""

import pytest

from ppl_attention.attention.supervision import build_supervision, load_store_sequences
from ppl_attention.design.store import SequenceStore
from ppl_attention.sensor import Sensor

MNIST = Sensor.mnist()
OPTIONS = {"canvas": 60, "clutter": 4, "train_size": 4000}


def store(path, split="train", options=OPTIONS):
    config = {
        "dataset": "cluttered-mnist",
        "task": "categorical",
        "grid": MNIST,
        "T": 3,
        "split": split,
        "data": {"name": "cluttered-mnist", "root": None, "seed": 0, "options": options},
    }
    s = SequenceStore.create(path, config)
    s.write_record(0, 0, [1, 2, 3])
    return path


def spec(**options):
    return {"name": "cluttered-mnist", "root": None, "seed": 0, "options": {**OPTIONS, **options}}


def test_a_store_of_the_test_split_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"designed on the 'test' split, but supervision needs .* \(split 'train'\)"):
        build_supervision(
            "nogs",
            20,
            MNIST,
            5,
            1,
            0,
            dataset="cluttered-mnist",
            sequences_dir=store(tmp_path / "t", split="test"),
            data_spec=spec(),
        )


def test_a_store_of_other_canvas_options_is_refused_naming_both(tmp_path):
    path = store(tmp_path / "s")
    idx, _ = load_store_sequences(path, "cluttered-mnist", MNIST, 5, data_spec=spec())
    assert idx.tolist() == [0]
    with pytest.raises(ValueError, match="clutter: store 4, training data 8"):
        load_store_sequences(path, "cluttered-mnist", MNIST, 5, data_spec=spec(clutter=8))
    # an older store without split or options is still read
    old = SequenceStore.create(
        tmp_path / "old", {"dataset": "cluttered-mnist", "task": "categorical", "grid": MNIST, "T": 3}
    )
    old.write_record(0, 0, [1, 2, 3])
    assert load_store_sequences(tmp_path / "old", "cluttered-mnist", MNIST, 5, data_spec=spec())[0].tolist() == [0]
