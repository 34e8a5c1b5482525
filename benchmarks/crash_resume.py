"""Kill -9 at random moments of ``generate``, ``train-avp``, ``build-prior`` and ``train``; rerun until done; compare.

For every command (a tiny config, CPU) the script

1. runs it once uninterrupted into ``WORK/<command>/reference`` (and counts its atomic writes);
2. runs it into ``WORK/<command>/killed`` again and again, each time killing it with SIGKILL at a random moment:
   half the kills after a random delay (anywhere in the run: start-up, loading, computing, writing), half through
   the crash hook of :mod:`ppl_attention.artifacts` (``PPL_ATTENTION_CRASH_AT=k``: SIGKILL at the k-th atomic
   write, between writing its temporary file and renaming it, or just after the rename -- i.e. between the writes
   of an artefact); every rerun is the same command line, with no manual step;
3. whenever a rerun completes before its kill lands (the artefact is finished), compares every final artefact
   with the reference and starts a fresh episode in an empty folder, so that the kills keep landing inside
   unfinished runs; after ``--kills`` kills the last episode is run once more to completion and compared too.
   Compared: tensors of each ``.safetensors`` file, ``.npy`` arrays and other files byte for byte, JSON with
   wall-clock fields dropped (``seconds``, ``elapsed``, ``iterations_per_second``, ``machine``, ``peak_rss_mb``...)
   and generate's per-invocation counts (``skipped``/``generated``; the store's size ``stored`` is compared);
   TensorBoard events and figures are not compared (they hold wall-clock times).

It prints a JSON summary: per command the kills delivered, the reruns refused (exit status != 0 without a kill),
leftover temporaries, and whether the final artefacts equal the reference.

    python benchmarks/crash_resume.py --kills 20 --work /tmp/crash   # ~10-20 min on 2 CPU cores
    python benchmarks/crash_resume.py --kills 3 --commands train     # a quick look
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "ppl_attention.cli"]
#: JSON keys that hold wall-clock figures, machine details or the output path (dropped before comparing)
VOLATILE = {
    "seconds",
    "elapsed",
    "machine",
    "peak_rss_mb",
    "versions",
    "out",
    "store",
    "figures",
    "files",
    "iterations_per_second",
    "created",
    "timestamp",
    # generate's per-invocation counts: a resumed run "skipped" what an earlier one "generated"; the store's
    # own size ("stored") and the request ("requested") are still compared
    "skipped",
    "generated",
}
SKIP_SUFFIXES = (".png", ".gif", ".pdf")


def commands(work: Path) -> dict[str, list[str]]:
    fx = work / "inputs"
    return {
        "build-prior": [
            "build-prior",
            "--kind",
            "database",
            "--database-size",
            "200",
            "--components",
            "12",
            "--fit-samples",
            "100",
            "--chunk-size",
            "40",
        ],
        "train-avp": [
            "train-avp",
            "--device",
            "cpu",
            "--train-size",
            "64",
            "--epochs",
            "3",
            "--width",
            "4",
            "--batch-size",
            "32",
            "--max-glimpses",
            "2",
            "--patience",
            "10",
        ],
        "generate": [
            "generate",
            "--device",
            "cpu",
            "--avp",
            str(fx / "avp"),
            "--prior",
            str(fx / "prior"),
            "--num-images",
            "4",
            "-T",
            "2",
            "--num-samples",
            "4",
            "--k1",
            "30",
            "--search",
            "exhaustive",
            "--split",
            "valid",
        ],  # held-out canvases: the AVP and the prior hold none of them
        "train": [
            "train",
            "--iterations",
            "6",
            "--validate-every",
            "2",
            "--batch-size",
            "8",
            "--hidden",
            "8",
            "--glimpses",
            "2",
            "--no-progress",
            "--tensorboard",
            "false",
            "--threads",
            "1",
        ],
    }


def env(**extra) -> dict:
    e = {
        **os.environ,
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "TQDM_DISABLE": "1",
    }
    for k in ("PPL_ATTENTION_CRASH_AT", "PPL_ATTENTION_CRASH_PHASE", "PPL_ATTENTION_COUNT_WRITES"):
        e.pop(k, None)
    e.update({k: str(v) for k, v in extra.items()})
    return e


def run(argv, out: Path, delay: float | None = None, **extra) -> tuple[str, float]:
    """('ok' | 'killed' | 'refused: <stderr tail>', seconds)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(
        CLI + argv + ["--out", str(out)],
        cwd=REPO,
        env=env(**extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    killed = False
    if delay is not None:
        try:
            p.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            killed = True
    _, err = p.communicate()
    dt = time.perf_counter() - t0
    if killed or p.returncode == -signal.SIGKILL:
        return "killed", dt
    if p.returncode != 0:
        return "refused: " + " | ".join(err.strip().splitlines()[-3:]), dt
    return "ok", dt


def _clean_json(obj):
    if isinstance(obj, dict):
        return {k: _clean_json(v) for k, v in obj.items() if k not in VOLATILE and not k.endswith("_seconds")}
    if isinstance(obj, list):
        return [_clean_json(v) for v in obj]
    return obj


def digest(path: Path) -> str:
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        h = hashlib.sha256()
        for k, v in sorted(load_file(str(path)).items()):
            h.update(k.encode())
            h.update(v.tobytes())
        return "tensors:" + h.hexdigest()
    if path.suffix == ".json":
        return (
            "json:"
            + hashlib.sha256(json.dumps(_clean_json(json.loads(path.read_text())), sort_keys=True).encode()).hexdigest()
        )
    return "bytes:" + hashlib.sha256(path.read_bytes()).hexdigest()


def artefacts(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and "tensorboard" not in rel.parts and p.suffix not in SKIP_SUFFIXES:
            out[str(rel)] = digest(p)
    return out


def temporaries(root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p in root.rglob(".*.tmp-*")]


def measure(name: str, argv: list[str], work: Path, kills: int, rng: random.Random) -> dict:
    base = work / name
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    counts = base / "writes.txt"
    status, ref_s = run(argv, base / "reference", PPL_ATTENTION_COUNT_WRITES=counts)
    if status != "ok":
        return {"command": name, "error": f"reference run: {status}"}
    writes = int(counts.read_text().split()[-1])
    reference = artefacts(base / "reference")
    out = base / "killed"
    delivered, refused, attempts, moments = 0, [], 0, []
    episodes, differ, left = 0, set(), 0

    def finish_episode() -> None:
        """Compare a completed killed run with the reference; the next kills start a fresh episode."""
        nonlocal episodes
        episodes += 1
        final = artefacts(out) if out.exists() else {}
        differ.update(k for k in set(reference) | set(final) if reference.get(k) != final.get(k))
        shutil.rmtree(out, ignore_errors=True)

    while delivered < kills and attempts < 4 * kills:
        attempts += 1
        if delivered % 2 == 0:  # a random moment in time
            delay = rng.uniform(0.3, ref_s)
            status, _ = run(argv, out, delay=delay)
            moment = f"t={delay:.1f}s"
        else:  # between the writes of an artefact (the k-th atomic write of this rerun)
            k, phase = rng.randint(1, writes), rng.choice(["before", "after"])
            status, _ = run(argv, out, PPL_ATTENTION_CRASH_AT=k, PPL_ATTENTION_CRASH_PHASE=phase)
            moment = f"write {k} ({phase} rename)"
        if status == "killed":
            delivered += 1
            moments.append(moment)
        elif status != "ok":
            refused.append(f"after {moment}: {status}")
        else:  # the run finished before the kill landed: this episode is complete; compare it, start afresh
            left += len(temporaries(out))
            finish_episode()
    if out.exists():  # the last episode: run it once more to completion
        left += len(temporaries(out))
        status, _ = run(argv, out)
        if status != "ok":
            refused.append(f"final rerun: {status}")
        leftovers = temporaries(out)
        finish_episode()
    else:
        leftovers = []
    differ = sorted(differ)
    return {
        "command": name,
        "reference_seconds": round(ref_s, 1),
        "atomic_writes_per_run": writes,
        "kills": delivered,
        "reruns": attempts + 1,
        "refused": refused,
        "kill_moments": moments,
        "episodes_compared": episodes,
        "temporaries_left_before_final_rerun": left,
        "temporaries_left_at_end": leftovers,
        "artefacts_compared": len(reference),
        "artefacts_differing": differ,
        "identical": not differ and not refused,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=20, help="SIGKILLs per command (default 20)")
    ap.add_argument("--commands", nargs="+", default=["generate", "train-avp", "build-prior", "train"])
    ap.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="crash-resume-"))
    work.mkdir(parents=True, exist_ok=True)
    cmds = commands(work)
    if "generate" in args.commands:  # its inputs, built once, uninterrupted
        fx = work / "inputs"
        for name in ("avp", "prior"):
            if not (fx / name / "manifest.json").is_file():
                key = "train-avp" if name == "avp" else "build-prior"
                status, _ = run(cmds[key], fx / name)
                assert status == "ok", status
    rng = random.Random(args.seed)
    t0 = time.perf_counter()
    results = []
    for name in args.commands:
        results.append(measure(name, cmds[name], work, args.kills, rng))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)  # progress, one line per command
    print(
        json.dumps(
            {
                "kills_per_command": args.kills,
                "seed": args.seed,
                "work": str(work),
                "seconds": round(time.perf_counter() - t0, 1),
                "all_identical": all(r.get("identical") for r in results),
                "results": results,
            },
            indent=2,
        )
    )
    return 0 if all(r.get("identical") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
