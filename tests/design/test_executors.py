"""Local and Ray executors give identical sequences, independent of sharding and batching."""
import pytest
import torch

from ppl_attention.design.executors import generate_sequences, parse_shard, shard_indices
from ppl_attention.design.sequential import DesignSettings
from ppl_attention.design.store import SequenceStore
from ppl_attention.design.toy import ToyFactory

SETTINGS = DesignSettings(T=2, num_samples=20, search="halving")


def _store(path):
    f = ToyFactory()
    return SequenceStore.create(path, {"dataset": "toy", "task": "label", "grid": f()[0].grid, "T": 2})


def test_sharding_does_not_change_results(tmp_path):
    whole = _store(tmp_path / "whole")
    generate_sequences(whole, ToyFactory(), range(8), SETTINGS, seed=1, images_per_task=3, progress=False)
    sharded = _store(tmp_path / "sharded")
    for i in range(3):
        generate_sequences(sharded, ToyFactory(), shard_indices(range(8), (i, 3)), SETTINGS, seed=1,
                           images_per_task=1, progress=False)
    a, b = whole.sequences(), sharded.sequences()
    assert list(a) == list(range(8)) and all(torch.equal(a[i], b[i]) for i in a)
    assert shard_indices(range(10), parse_shard("1/4")) == [1, 5, 9]
    for bad in ("4/4", "x", "1/0"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)
    with pytest.raises(ValueError, match="executor"):
        generate_sequences(whole, ToyFactory(), range(2), SETTINGS, executor="dask")


def test_ray_matches_local(tmp_path):
    ray = pytest.importorskip("ray")
    local = _store(tmp_path / "local")
    generate_sequences(local, ToyFactory(), range(6), SETTINGS, seed=2, progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = _store(tmp_path / "ray")
        counts = generate_sequences(remote, ToyFactory(), range(6), SETTINGS, seed=2, executor="ray",
                                    images_per_task=2, progress=False)
    finally:
        ray.shutdown()
    assert counts["generated"] == 6
    a, b = local.sequences(), remote.sequences()
    assert all(torch.equal(a[i], b[i]) for i in range(6))
    assert all(torch.equal(local.epe_maps(i), remote.epe_maps(i)) for i in range(6))
