"""Local and Ray executors give identical sequences, independent of sharding and batching."""

import pytest
import torch

from ppl_attention.design.executors import FAILURES, generate_sequences, parse_shard, read_failures, shard_indices
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
        generate_sequences(
            sharded, ToyFactory(), shard_indices(range(8), (i, 3)), SETTINGS, seed=1, images_per_task=1, progress=False
        )
    a, b = whole.sequences(), sharded.sequences()
    assert list(a) == list(range(8)) and all(torch.equal(a[i], b[i]) for i in a)
    assert shard_indices(range(10), parse_shard("1/4")) == [1, 5, 9]
    for bad in ("4/4", "x", "1/0"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)
    with pytest.raises(ValueError, match="executor"):
        generate_sequences(whole, ToyFactory(), range(2), SETTINGS, executor="dask")


def test_failing_image_recorded_skipped_and_rerun(tmp_path):
    clean = _store(tmp_path / "clean")
    generate_sequences(clean, ToyFactory(), range(6), SETTINGS, seed=1, images_per_task=4, progress=False)
    store = _store(tmp_path / "store")
    counts = generate_sequences(
        store, ToyFactory(fail_on=(1, 3)), range(6), SETTINGS, seed=1, images_per_task=4, progress=False
    )
    assert counts["failed"] == [1, 3] and counts["generated"] == 4 and store.indices() == [0, 2, 4, 5]
    assert "image 3 cannot be read" in counts["failures"]["3"]
    assert set(read_failures(store)) == {1, 3} and "OSError" in read_failures(store)[1]
    assert store.first_glimpse_epe().shape == clean.first_glimpse_epe().shape
    # a rerun of one of them keeps the other's failure; a rerun of all finishes them and removes the file
    generate_sequences(store, ToyFactory(), [1], SETTINGS, seed=1, progress=False)
    assert list(read_failures(store)) == [3]
    counts = generate_sequences(store, ToyFactory(), range(6), SETTINGS, seed=1, progress=False)
    assert counts["failed"] == [] and counts["generated"] == 1 and counts["skipped"] == 5
    assert not (store.directory / FAILURES).exists() and read_failures(store) == {}
    a, b = clean.sequences(), store.sequences()
    assert all(torch.equal(a[i], b[i]) for i in range(6))


def test_ray_plan_and_worker_device():
    from ppl_attention.design.images import ImageFactory
    from ppl_attention.design.ray_executor import _plan, worker_factory

    class Cluster:
        def __init__(self, **resources):
            self.resources = resources

        def cluster_resources(self):
            return self.resources

    assert _plan(Cluster(CPU=8, GPU=2), None, None, 1.0) == (1.0, 2)  # GPUs used although the driver has none
    assert _plan(Cluster(CPU=8), None, None, 2.0) == (0.0, 4)
    assert _plan(Cluster(CPU=8, GPU=2), 0.5, None, 1.0) == (0.5, 4)
    assert _plan(Cluster(CPU=8, GPU=2), 0, 3, 1.0) == (0.0, 3)
    with pytest.raises(ValueError, match="gpus_per_worker=1 but the Ray cluster has 0 GPUs"):
        _plan(Cluster(CPU=8), 1, None, 1.0)
    with pytest.raises(ValueError, match="`cpus_per_worker` must be > 0"):
        _plan(Cluster(CPU=8), 0, None, 0)
    f = ImageFactory("folder", "avp", "prior", device="cpu")
    assert worker_factory(f, 1.0).device == "cuda" and worker_factory(f, 0.0).device == "cpu"
    assert worker_factory(ToyFactory(), 1.0) == ToyFactory()


def test_connect_joins_a_cluster_with_its_own_resources(monkeypatch):
    import sys
    import types

    from ppl_attention.design.ray_executor import connect

    calls = []
    fake = types.SimpleNamespace(is_initialized=lambda: False, init=lambda **kw: calls.append(kw))
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    connect(num_cpus=2)
    assert calls[-1]["address"] == "127.0.0.1:6379" and "num_cpus" not in calls[-1] and "num_gpus" not in calls[-1]
    assert calls[-1]["_node_ip_address"] == "127.0.0.1"
    connect("10.0.0.5:6379")
    assert calls[-1]["address"] == "10.0.0.5:6379" and "_node_ip_address" not in calls[-1]
    monkeypatch.delenv("RAY_ADDRESS")
    connect(num_cpus=2)  # never a leftover cluster of this machine: a Ray of its own
    assert calls[-1]["address"] == "local" and calls[-1]["num_cpus"] == 2


def test_ray_matches_local(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    from ppl_attention.design.ray_executor import connect

    local = _store(tmp_path / "local")
    generate_sequences(local, ToyFactory(), range(6), SETTINGS, seed=2, progress=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray = connect(num_cpus=2)
    try:
        remote = _store(tmp_path / "ray")
        counts = generate_sequences(
            remote,
            ToyFactory(fail_on=(4,)),
            range(6),
            SETTINGS,
            seed=2,
            executor="ray",
            images_per_task=2,
            progress=False,
        )
    finally:
        ray.shutdown()
    assert counts["generated"] == 5 and counts["failed"] == [4] and list(read_failures(remote)) == [4]
    assert torch.equal(local.first_glimpse_epe(), remote.first_glimpse_epe())
    a, b = local.sequences(), remote.sequences()
    assert sorted(b) == [0, 1, 2, 3, 5] and all(torch.equal(a[i], b[i]) for i in b)
    assert all(torch.equal(local.epe_maps(i), remote.epe_maps(i)) for i in b)
