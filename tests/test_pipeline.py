"""The Python pipeline: the tensor adapter, option checking, and handles that open what a stage wrote."""
import pytest
import torch

import ppl_attention
from ppl_attention.pipeline import AVPHandle, Dataset, SequencesHandle, _namespace, tensor_dataset, train_attention


def test_stages_are_exported_from_the_package():
    for name in ("train_avp", "build_prior", "design_sequences", "train_attention", "evaluate", "tensor_dataset"):
        assert callable(getattr(ppl_attention, name))


def test_tensor_dataset_round_trips_images_and_labels(tmp_path):
    g = torch.Generator().manual_seed(0)
    images = torch.rand(20, 1, 32, 32, generator=g)
    labels = torch.arange(20) % 2
    data = tensor_dataset(images, labels, tmp_path / "tensors", class_names=["even", "odd"])
    assert data == Dataset("folder", str(tmp_path / "tensors"), {"size": 32, "channels": 1})
    splits = [data.load(s) for s in ("train", "valid", "test")]
    assert sum(len(s) for s in splits) == 20
    assert list(splits[0].class_names) == ["even", "odd"] and splits[0].num_classes == 2
    item = splits[0][0]
    assert tuple(item["image"].shape) == (1, 32, 32)


@pytest.mark.parametrize("images, labels, match", [
    (torch.rand(4, 2, 8, 8), torch.zeros(4, dtype=torch.long), "images must be"),
    (torch.rand(4, 1, 8, 8), torch.zeros(3, dtype=torch.long), "labels must be"),
    (torch.rand(4, 1, 8, 8) + 1, torch.zeros(4, dtype=torch.long), r"in \[0, 1\]"),
])
def test_tensor_dataset_refuses_bad_tensors(tmp_path, images, labels, match):
    with pytest.raises(ValueError, match=match):
        tensor_dataset(images, labels, tmp_path / "x")


def test_options_are_the_subcommands_and_unknown_ones_are_refused(tmp_path):
    ns = _namespace("generate", {"num_images": 3, "out": tmp_path / "s"})
    assert ns.num_images == 3 and ns.out == str(tmp_path / "s") and ns.search is None
    assert _namespace("train-avp", {"glimpses": 3}).max_glimpses == 3  # a flag's name, whatever its dest
    with pytest.raises(TypeError, match="unknown option 'num_imagez'"):
        _namespace("generate", {"num_imagez": 3})


def test_a_repeatable_flag_takes_one_value_or_a_list(tmp_path):
    """``dataset_from=avp`` is ``--dataset-from AVP`` typed once (not one flag per character of the path)."""
    avp = AVPHandle(tmp_path / "avp")
    assert _namespace("train", {"dataset_from": avp}).dataset_from == [str(tmp_path / "avp")]
    assert _namespace("train", {"dataset_from": [avp, "b"]}).dataset_from == [str(tmp_path / "avp"), "b"]
    assert _namespace("train-avp", {"dataset_option": "size=32"}).dataset_option == ["size=32"]


def test_a_stages_threads_are_its_own(tmp_path):
    """``threads=1`` holds for that stage only, as in the CLI's process per command: the stages after it run with
    the session's thread count, and so compute what the CLI computes."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        (tmp_path / "file").write_text("")
        with pytest.raises(ValueError, match="is a file"):  # refused after the stage set its threads
            train_attention(tmp_path / "file", "cluttered-mnist", threads=1, quiet=True)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_sequences_handle_reads_the_store(tmp_path):
    from ppl_attention.design.store import SequenceStore
    from ppl_attention.sensor import Sensor

    grid = Sensor(8, 4, stride=2)
    store = SequenceStore.create(tmp_path / "s", {"dataset": "toy", "task": "label", "grid": grid, "T": 2})
    store.write_record(0, 0, [1, 2])
    assert SequencesHandle(tmp_path / "s").sequences() == {0: [1, 2]}
