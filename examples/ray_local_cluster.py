"""A Ray cluster on this machine -- a head and two worker nodes on 127.0.0.1 -- designing 20 images, one of which
fails: 19 records and the failure named, then a rerun that finishes the 20th, and the records compared with the
local executor's.

The cluster is started the way a real one is (``ray start --head``, then ``ray start --address HEAD`` on each
worker machine; docs/cluster.md), every server on the loopback address, with its own temporary folder; the
example stops the processes it started, by their process group, and nothing else (never ``ray stop``, which
would stop every Ray on the machine).  The design problem is the library's toy database problem
(``design.toy.ToyFactory``), whose ``fail_on`` makes reading an image raise, as a corrupt file would.

    python examples/ray_local_cluster.py            # prints a JSON summary
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_flags(temp_dir: Path) -> list[str]:
    """What lets several Ray nodes share one machine: the loopback address, a temporary folder each (its
    sockets) and free ports for each node's agents (their defaults are fixed numbers)."""
    ports = {
        flag: str(free_port())
        for flag in (
            "--dashboard-agent-listen-port",
            "--dashboard-agent-grpc-port",
            "--metrics-export-port",
            "--runtime-env-agent-port",
        )
    }
    return [
        "--node-ip-address",
        "127.0.0.1",
        "--temp-dir",
        str(temp_dir),
        "--object-store-memory",
        str(200 << 20),
        *(x for kv in ports.items() for x in kv),
    ]


def start_node(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    """``ray start ARGS --block`` in its own process group (so it and its servers can be stopped together)."""
    cmd = [sys.executable, "-m", "ray.scripts.scripts", "start", *args, "--block"]
    return subprocess.Popen(cmd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)


def stop_node(proc: subprocess.Popen) -> None:
    """Stop a node started by :func:`start_node`: its process group, SIGTERM then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            time.sleep(0.5)  # let the group's servers exit after their parent
        except subprocess.TimeoutExpired:
            continue
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # anything of the group still alive
    except ProcessLookupError:
        pass


def wait_for_port(port: int, timeout: float = 90.0) -> None:
    """Wait until the head's GCS accepts connections."""
    start = time.time()
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if time.time() - start > timeout:
            raise TimeoutError(f"the Ray head did not open port {port} in {timeout:.0f} s")
        time.sleep(0.5)


def wait_for_nodes(ray, n: int, timeout: float = 90.0) -> None:
    start = time.time()
    while sum(node["Alive"] for node in ray.nodes()) < n:
        if time.time() - start > timeout:
            raise TimeoutError(f"the Ray cluster has {sum(x['Alive'] for x in ray.nodes())} nodes, expected {n}")
        time.sleep(1)


def _store(path: Path, factory):
    from ppl_attention.design.store import SequenceStore

    return SequenceStore.create(path, {"dataset": "toy", "task": "label", "grid": factory()[0].grid, "T": 2})


def design(out: Path, address: str, images: int, bad: int) -> dict:
    """The three runs (Ray with a failing image, Ray again, local) and their comparison."""
    import ray

    from ppl_attention.design.executors import generate_sequences, read_failures
    from ppl_attention.design.ray_executor import connect
    from ppl_attention.design.sequential import DesignSettings
    from ppl_attention.design.toy import ToyFactory

    settings = DesignSettings(T=2, num_samples=20, search="halving")
    good, failing = ToyFactory(num_images=images), ToyFactory(num_images=images, fail_on=(bad,))
    connect(address)
    wait_for_nodes(ray, 3)
    resources = ray.cluster_resources()
    try:
        store = _store(out / "ray", good)
        first = generate_sequences(
            store, failing, range(images), settings, seed=0, executor="ray", images_per_task=2, progress=False
        )
        after_first = {"records": len(store), "failures": read_failures(store)}
        second = generate_sequences(store, good, range(images), settings, seed=0, executor="ray", progress=False)
    finally:
        ray.shutdown()
    local = _store(out / "local", good)
    generate_sequences(local, good, range(images), settings, seed=0, progress=False)
    same = all(
        store.record(i)["locations"] == local.record(i)["locations"]
        and torch.equal(store.epe_maps(i), local.epe_maps(i))
        for i in range(images)
    )
    return {
        "cluster": {"nodes": 3, "CPU": resources.get("CPU"), "address": address},
        "first_run": {
            "generated": first["generated"],
            "failed": first["failed"],
            "records": after_first["records"],
            "failures_file": after_first["failures"],
        },
        "rerun": {
            "generated": second["generated"],
            "skipped": second["skipped"],
            "failed": second["failed"],
            "records": len(store),
            "failures_file_left": (store.directory / "failures.json").exists(),
        },
        "records_identical_to_local_executor": same,
        "first_glimpse_identical": torch.equal(store.first_glimpse_epe(), local.first_glimpse_epe()),
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=20, help="images to design (default 20)")
    p.add_argument("--bad", type=int, default=7, help="the image made to fail (default 7)")
    args = p.parse_args(argv)
    if not 0 <= args.bad < args.images:
        p.error(f"--bad must be an image index in [0, {args.images - 1}], got {args.bad}")
    tmp = Path(tempfile.mkdtemp(prefix="ppl-ray-"))
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}  # the nodes' workers import this package
    env.pop("RAY_ADDRESS", None)
    # a cluster only this machine's loopback reaches: no token (a real cluster keeps Ray's token authentication,
    # docs/cluster.md); the driver (this process) must agree with the nodes
    env["RAY_AUTH_MODE"] = os.environ["RAY_AUTH_MODE"] = "disabled"
    port = free_port()
    address = f"127.0.0.1:{port}"
    nodes = []
    try:
        nodes.append(
            start_node(
                [
                    "--head",
                    "--port",
                    str(port),
                    "--num-cpus",
                    "0",
                    "--include-dashboard",
                    "false",
                    "--disable-usage-stats",
                    *node_flags(tmp / "head"),
                ],
                env,
                tmp / "head.log",
            )
        )
        wait_for_port(port)
        for k in range(2):
            nodes.append(
                start_node(
                    ["--address", address, "--num-cpus", "1", *node_flags(tmp / f"w{k}")], env, tmp / f"worker{k}.log"
                )
            )
        result = design(tmp, address, args.images, args.bad)
    except BaseException:
        print(f"the cluster's logs are kept in {tmp}", file=sys.stderr)
        raise
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    finally:
        for node in reversed(nodes):
            stop_node(node)
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
