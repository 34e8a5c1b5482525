"""The bad-input boundary: one table of bad inputs through the CLI and the API (issue #18).

Every case must be refused with exit status 2 (CLI) or a ValueError / OSError (API) whose message contains the
given fragment, print no traceback, leave every file it could touch byte-identical (the whole fixture tree and
its --out are hashed before and after), and never run code from a booby-trapped file: the traps are pickle
payloads that would create a sentinel file if anything unpickled them.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ppl_attention.cli import main
from tests._helpers import tiny_train, train_avp_argv

pytestmark = pytest.mark.usefixtures("one_thread")

SENTINEL = "SENTINEL-code-ran"


class _Payload:
    """Unpickling this runs ``touch SENTINEL`` (what a malicious checkpoint would do)."""

    def __init__(self, sentinel: Path):
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


def _trap(path: Path, sentinel: Path) -> None:
    """Overwrite ``path`` with a pickle payload in the format its suffix suggests."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        np.save(path, np.array([_Payload(sentinel)], dtype=object), allow_pickle=True)
    elif path.suffix == ".pt":
        torch.save({"x": _Payload(sentinel)}, path)
    else:
        path.write_bytes(pickle.dumps(_Payload(sentinel)))


def _copy_with_trap(src: Path, dst: Path, member: str, sentinel: Path) -> Path:
    shutil.copytree(src, dst)
    _trap(dst / member, sentinel)
    return dst


@pytest.fixture(scope="module")
def fx(tmp_path_factory) -> dict:
    """Tiny artefacts of every kind (built through the API in a few seconds) and their booby-trapped copies."""
    from ppl_attention.completion.database import mnist_canvas_source
    from ppl_attention.completion.pca_index import PCAIndexConfig
    from ppl_attention.completion.prior import build_prior
    from ppl_attention.data import load_dataset
    from ppl_attention.design.store import SequenceStore
    from ppl_attention.posterior import save_avp
    from ppl_attention.posterior.network import AVP
    from ppl_attention.posterior.training import TrainAVPConfig, avp_config_for

    root = tmp_path_factory.mktemp("fx")
    sentinel = root / SENTINEL
    d = {"root": root, "sentinel": sentinel}
    data = load_dataset("cluttered-mnist", split="train", seed=0)
    d["avp"] = root / "avp"
    save_avp(AVP(avp_config_for(data, TrainAVPConfig(width=4))), d["avp"], "cluttered-mnist", 2)
    d["prior"] = root / "prior"
    build_prior(
        d["prior"],
        mnist_canvas_source("train"),
        60,
        data.grid,
        PCAIndexConfig(components=8, fit_samples=50),
        chunk_size=30,
        progress=False,
    )
    d["store"] = root / "store"
    store = SequenceStore.create(
        d["store"], {"dataset": "cluttered-mnist", "task": "label", "grid": data.grid, "T": 2, "seed": 0}
    )
    store.write_record(0, 0, [1, 2], epe=torch.rand(2, 81))
    store.write_first_glimpse(torch.rand(81))
    d["run"] = root / "run"
    assert main(train_argv(d["run"])) == 0
    d["file"] = root / "a-file.txt"
    d["file"].write_text("not a folder\n")
    d["nonempty"] = root / "nonempty"
    (d["nonempty"] / "notes.txt").parent.mkdir()
    (d["nonempty"] / "notes.txt").write_text("someone's notes\n")
    d["emptydir"] = root / "emptydir"
    d["emptydir"].mkdir()
    # booby-trapped files, one of every kind the project reads
    for name, member in (("avp_w", "avp.safetensors"), ("avp_json", "avp.json"), ("avp_manifest", "manifest.json")):
        d[name] = _copy_with_trap(d["avp"], root / name, member, sentinel)
    for name, member in (
        ("prior_pos", "pca/positions.npy"),
        ("prior_manifest", "manifest.json"),
        ("prior_pca", "pca/pca.safetensors"),
        ("prior_codes", "pca/codes.npy"),
    ):
        d[name] = _copy_with_trap(d["prior"], root / name, member, sentinel)
    for name, member in (
        ("store_manifest", "manifest.json"),
        ("store_record", "records/0000000.json"),
        ("store_first", "first_glimpse.json"),
    ):
        d[name] = _copy_with_trap(d["store"], root / name, member, sentinel)
    d["run_ckpt"] = _copy_with_trap(d["run"], root / "run_ckpt", "checkpoint/last.safetensors", sentinel)
    d["run_manifest"] = _copy_with_trap(d["run"], root / "run_manifest", "manifest.json", sentinel)
    d["run_log"] = _copy_with_trap(d["run"], root / "run_log", "log.csv", sentinel)
    d["avp_ckpt"] = root / "avp_ckpt"
    _trap(d["avp_ckpt"] / "checkpoint" / "last.safetensors", sentinel)
    for name in ("trap.safetensors", "trap.json", "trap.yaml", "trap.pt", "trap.npy"):
        d[name.replace(".", "_")] = root / name
        _trap(root / name, sentinel)
    d["seqs"] = root / "seqs"
    _trap(d["seqs"] / "1.txt", sentinel)
    d["bad_yaml"] = root / "bad.yaml"
    d["bad_yaml"].write_text("hidden: zero\n")
    d["unknown_yaml"] = root / "unknown.yaml"
    d["unknown_yaml"].write_text("hiddden: 8\n")
    d["genbad_yaml"] = root / "genbad.yaml"
    d["genbad_yaml"].write_text("batch_size: 0\n")
    d["avpbad_yaml"] = root / "avpbad.yaml"
    d["avpbad_yaml"].write_text("patience: 0\n")
    return d


def train_argv(out) -> list[str]:
    """A tiny ``train`` run into ``out``."""
    return ["train", "--out", str(out), *tiny_train()]


TRAIN = train_argv("{out}")
AVP = train_avp_argv("{out}")
GEN = [
    "generate",
    "--device",
    "cpu",
    "--avp",
    "{avp}",
    "--prior",
    "{prior}",
    "--out",
    "{out}",
    "--num-images",
    "1",
    "--glimpses",
    "2",
    "--num-samples",
    "2",
    "--k1",
    "10",
    "--search",
    "exhaustive",
    "--allow-oracle",
    "true",
]
EVAL = ["evaluate-avp", "--device", "cpu"]
PRIOR = ["build-prior", "--out", "{out}", "--database-size", "10", "--kind", "database"]
PLOT = ["plot", "epe", "{store}", "--index", "0"]

# (id, argv, fragment the one-line message must contain)
CLI_CASES = [
    # ---- train: sizes, counts, weights
    ("train-hidden-0", TRAIN + ["--hidden", "0"], "--hidden must be an int >= 1, got 0"),
    ("train-glimpse-dim-0", TRAIN + ["--glimpse-dim", "0"], "--glimpse-dim must be an int >= 1"),
    ("train-policy-hidden-0", TRAIN + ["--policy-hidden", "0"], "--policy-hidden must be an int >= 1"),
    (
        "train-policy-std-0",
        TRAIN + ["--policy", "gaussian", "--policy-std", "0"],
        "--policy-std must be a finite number > 0",
    ),
    ("train-policy-std-nan", TRAIN + ["--policy-std", "nan"], "--policy-std must be a finite number"),
    ("train-config-unknown-preset", TRAIN + ["--config", "cluttered-mnist-finest"], "nor is it a preset"),
    ("train-iterations-0", TRAIN + ["--iterations", "0"], "--iterations must be an int >= 1, got 0"),
    ("train-iterations-neg", TRAIN + ["--iterations", "-5"], "--iterations must be an int >= 1, got -5"),
    ("train-batch-0", TRAIN + ["--batch-size", "0"], "--batch-size must be an int >= 1"),
    ("train-validate-every-0", TRAIN + ["--validate-every", "0"], "--validate-every must be an int >= 1"),
    ("train-glimpses-0", TRAIN + ["--glimpses", "0"], "--glimpses must be an int >= 1"),
    ("train-eval-batch-0", TRAIN + ["--eval-batch-size", "0"], "--eval-batch-size must be an int >= 1"),
    ("train-stop-weight-neg", TRAIN + ["--stop-weight", "-1"], "--stop-weight must be a finite number >= 0"),
    ("train-supervision-weight-neg", TRAIN + ["--supervision-weight", "-1"], "--supervision-weight must be"),
    ("train-entropy-weight-neg", TRAIN + ["--entropy-weight", "-0.5"], "--entropy-weight must be"),
    ("train-baseline-weight-neg", TRAIN + ["--baseline-weight", "-1"], "--baseline-weight must be"),
    ("train-stop-weight-nan", TRAIN + ["--stop-weight", "nan"], "--stop-weight must be a finite number"),
    ("train-lr-0", TRAIN + ["--lr", "0"], "--lr must be a positive number"),
    ("train-lr-inf", TRAIN + ["--lr", "inf"], "--lr must be a positive number"),
    ("train-fraction", TRAIN + ["--supervised-fraction", "1.5"], "--supervised-fraction must be in [0, 1]"),
    ("train-until-neg", TRAIN + ["--supervision-until", "-1"], "--supervision-until must be a finite number >= 0"),
    ("train-num-supervised-neg", TRAIN + ["--num-supervised", "-1"], "--num-supervised must be an int >= 0"),
    ("train-pretrain-iterations-0", TRAIN + ["--pretrain-iterations", "0"], "--pretrain-iterations must be"),
    ("train-threads-0", TRAIN + ["--threads", "0"], "--threads must be an int >= 1"),
    ("train-attribute-neg", TRAIN + ["--attribute", "-2"], "--attribute must be a finite number >= 0"),
    # ---- train: supervision sources
    ("train-nogs-no-store", TRAIN + ["--supervision", "nogs"], "needs --sequences"),
    ("train-nogs-missing-store", TRAIN + ["--supervision", "nogs", "--sequences", "{tmp}/missing"], "does not exist"),
    ("train-nogs-store-is-file", TRAIN + ["--supervision", "nogs", "--sequences", "{file}"], "is a file"),
    (
        "train-nogs-store-too-short",
        TRAIN + ["--supervision", "nogs", "--sequences", "{store}", "--glimpses", "3"],
        "T = 2 glimpses, fewer than --glimpses 3",
    ),
    ("train-epe-first-missing", TRAIN + ["--supervision", "h1", "--epe-first", "{tmp}/none.json"], "--epe-first"),
    ("train-dataset-unknown", TRAIN + ["--dataset", "nonsense"], "'nonsense'"),
    (
        "train-backbone-weights-missing",
        TRAIN + ["--backbone", "mobilenet_v2", "--backbone-weights", "{tmp}/none.safetensors"],
        "--backbone-weights",
    ),
    # ---- train: --out
    ("train-out-is-file", TRAIN + ["--out", "{file}"], "is a file, expected a directory"),
    ("train-out-under-file", TRAIN + ["--out", "{file}/sub"], "is a file, expected a folder on the way"),
    (
        "train-out-other-hidden",
        TRAIN + ["--out", "{run}", "--hidden", "16"],
        "holds a run made with other settings (network.network",
    ),
    ("train-out-other-seed", TRAIN + ["--out", "{run}", "--seed", "3"], "holds a run made with other settings"),
    ("train-out-other-lr", TRAIN + ["--out", "{run}", "--lr", "0.01"], "train.lr: stored 0.001, now 0.01"),
    ("train-out-is-avp", TRAIN + ["--out", "{avp}"], "holds a 'avp' artefact"),
    # ---- train: --config
    (
        "train-config-bad-value",
        ["train", "--out", "{out}", "--config", "{bad_yaml}"],
        "--hidden must be an int >= 1, got 'zero'",
    ),
    ("train-config-unknown", ["train", "--out", "{out}", "--config", "{unknown_yaml}"], "unknown field(s) ['hiddden']"),
    ("train-config-missing", ["train", "--out", "{out}", "--config", "{tmp}/none.yaml"], "does not exist"),
    # ---- train: booby-trapped files
    (
        "trap-train-backbone-weights",
        TRAIN + ["--backbone", "mobilenet_v2", "--backbone-layers", "2", "--backbone-weights", "{trap_safetensors}"],
        "trap.safetensors' is not a valid safetensors file",
    ),
    (
        "trap-train-backbone-pt",
        TRAIN + ["--backbone", "mobilenet_v2", "--backbone-weights", "{trap_pt}"],
        "trap.pt must be a .safetensors file",
    ),
    ("trap-train-epe-first", TRAIN + ["--supervision", "h1", "--epe-first", "{trap_json}"], "trap.json must hold"),
    (
        "trap-train-store-manifest",
        TRAIN + ["--supervision", "nogs", "--sequences", "{store_manifest}"],
        "store_manifest/manifest.json is not a JSON file",
    ),
    (
        "trap-train-store-first",
        TRAIN + ["--supervision", "h1", "--sequences", "{store_first}"],
        "store_first/first_glimpse.json is not a JSON file",
    ),
    (
        "trap-train-checkpoint",
        TRAIN + ["--out", "{run_ckpt}"],
        "run_ckpt/checkpoint/last.safetensors is not a valid safetensors file",
    ),
    ("trap-train-run-manifest", TRAIN + ["--out", "{run_manifest}"], "run_manifest/manifest.json is not a JSON file"),
    ("trap-train-config", ["train", "--out", "{out}", "--config", "{trap_yaml}"], "trap.yaml is not a YAML text file"),
    # ---- plot-attention
    ("plot-attention-no-log", ["plot-attention", "a={tmp}/nothing", "--out", "{out}.png"], "no log.csv"),
    ("plot-attention-spec", ["plot-attention", "nolabel", "--out", "{out}.png"], "LABEL=DIR"),
    ("plot-attention-out-dir", ["plot-attention", "a={run}", "--out", "{emptydir}"], "is a directory"),
    (
        "plot-attention-metric",
        ["plot-attention", "a={run}", "--out", "{out}.png", "--metric", "nope"],
        "--metric 'nope' is not a column",
    ),
    ("trap-plot-attention-log", ["plot-attention", "a={run_log}", "--out", "{out}.png"], "run_log/log.csv is not"),
    # ---- train-avp
    ("avp-max-glimpses-0", AVP + ["--glimpses", "0"], "--glimpses must be an int >= 1"),
    ("avp-train-size-0", AVP + ["--train-size", "0"], "--train-size must be an int >= 1, got 0"),
    ("avp-train-size-neg", AVP + ["--train-size", "-3"], "--train-size must be an int >= 1"),
    ("avp-epochs-0", AVP + ["--epochs", "0"], "--epochs must be an int >= 1"),
    ("avp-batch-0", AVP + ["--batch-size", "0"], "--batch-size must be an int >= 1"),
    ("avp-width-0", AVP + ["--width", "0"], "--width must be an int >= 1"),
    ("avp-patience-0", AVP + ["--patience", "0"], "--patience must be an int >= 1"),
    ("avp-lr-neg", AVP + ["--lr", "-1"], "--lr must be a finite number >= 0"),
    ("avp-weight-decay-neg", AVP + ["--weight-decay", "-1"], "--weight-decay must be"),
    ("avp-aux-weight-neg", AVP + ["--aux-weight", "-1"], "--aux-weight must be"),
    ("avp-dropout", AVP + ["--dropout", "1.5"], "--dropout must lie in [0, 1]"),
    ("avp-full-fraction", AVP + ["--full-fraction", "2"], "--full-fraction must lie in [0, 1]"),
    ("avp-time-limit-neg", AVP + ["--time-limit-min", "-1"], "--time-limit-min must be"),
    ("avp-out-is-file", AVP + ["--out", "{file}"], "is a file, expected a directory"),
    ("avp-pretrained-missing", AVP + ["--pretrained", "{tmp}/none.safetensors"], "--pretrained"),
    ("avp-config-bad", AVP + ["--config", "{avpbad_yaml}"], "--patience must be an int >= 1, got 0"),
    (
        "trap-avp-pretrained",
        AVP + ["--backbone", "mobilenet_v2", "--pretrained", "{trap_safetensors}"],
        "trap.safetensors is not a valid safetensors file",
    ),
    (
        "trap-avp-checkpoint",
        AVP + ["--out", "{avp_ckpt}"],
        "avp_ckpt/checkpoint/last.safetensors is not a valid safetensors file",
    ),
    # ---- evaluate-avp
    ("eval-missing", EVAL + ["{tmp}/nope"], "does not exist"),
    ("eval-file", EVAL + ["{file}"], "is a file"),
    ("eval-draws-0", EVAL + ["{avp}", "--draws", "0"], "--draws"),
    ("eval-bins-0", EVAL + ["{avp}", "--bins", "0"], "--bins"),
    ("eval-batch-0", EVAL + ["{avp}", "--batch-size", "0"], "--batch-size must be an int >= 1"),
    ("eval-max-glimpses-neg", EVAL + ["{avp}", "--glimpses", "-1"], "--glimpses must be an int >= 0"),
    ("eval-not-avp", EVAL + ["{store}"], "holds a 'sequences' artefact, expected 'avp'"),
    ("trap-eval-weights", EVAL + ["{avp_w}"], "avp_w/avp.safetensors is not a valid safetensors file"),
    ("trap-eval-json", EVAL + ["{avp_json}"], "avp_json/avp.json is not a JSON file"),
    ("trap-eval-manifest", EVAL + ["{avp_manifest}"], "avp_manifest/manifest.json is not a JSON file"),
    # ---- generate
    ("gen-batch-0", GEN + ["--batch-size", "0"], "--batch-size must be an int >= 1, got 0"),
    ("gen-index-neg", GEN + ["--indices", "-1"], "--indices must be an int >= 0, got -1"),
    ("gen-index-huge", GEN + ["--indices", "1000000000"], "has 4000 images (indices 0..3999), got index 1000000000"),
    ("gen-index-dup", GEN + ["--indices", "1", "1"], "--indices holds duplicates"),
    ("gen-T-90", GEN + ["--glimpses", "90"], "--glimpses must be <= 81"),
    ("gen-T-0", GEN + ["--glimpses", "0"], "--glimpses must be an int >= 1"),
    ("gen-num-images-0", GEN + ["--num-images", "0"], "--num-images must be an int >= 1"),
    ("gen-num-images-huge", GEN + ["--num-images", "5000"], "--num-images: the train split"),
    ("gen-num-samples-0", GEN + ["--num-samples", "0"], "--num-samples must be an int >= 1"),
    ("gen-k1-0", GEN + ["--k1", "0"], "--k1 must be an int >= 1"),
    ("gen-first-num-samples-0", GEN + ["--first-num-samples", "0"], "--first-num-samples must be an int >= 1"),
    ("gen-images-per-task-0", GEN + ["--images-per-task", "0"], "--images-per-task must be an int >= 1"),
    ("gen-shift-neg", GEN + ["--shift", "-1"], "--shift must be an int >= 0"),
    ("gen-sigma-0", GEN + ["--sigma", "0"], "--sigma must be a finite number > 0"),
    ("gen-sigma-q-neg", GEN + ["--sigma-q", "-5"], "--sigma-q must be a finite number > 0"),
    ("gen-target-ess", GEN + ["--target-ess", "1.5"], "--target-ess must be a fraction in (0, 1]"),
    ("gen-task", GEN + ["--task", "abc"], "--task must be 'label' or an attribute index"),
    ("gen-shard-order", GEN + ["--shard", "3/2"], "--shard i/n needs 0 <= i < n"),
    ("gen-shard-text", GEN + ["--shard", "x"], "--shard must look like i/n"),
    ("gen-search-option", GEN + ["--search", "halving", "--search-options", "bogus=1"], "no option 'bogus'"),
    ("gen-avp-missing", GEN + ["--avp", "{tmp}/none"], "--avp"),
    ("gen-prior-file", GEN + ["--prior", "{file}"], "--prior"),
    ("gen-out-file", GEN + ["--out", "{file}"], "is a file, expected a directory"),
    ("gen-out-nonempty", GEN + ["--out", "{nonempty}"], "is not empty and has no manifest.json"),
    ("gen-out-other-config", GEN + ["--out", "{store}"], "was made with other settings"),
    ("gen-out-avp", GEN + ["--out", "{avp}"], "holds a 'avp' artefact, expected 'sequences'"),
    ("gen-config-bad", GEN + ["--config", "{genbad_yaml}"], "--batch-size must be an int >= 1, got 0"),
    ("trap-gen-avp-weights", GEN + ["--avp", "{avp_w}"], "avp_w/avp.safetensors is not a valid safetensors file"),
    ("trap-gen-avp-json", GEN + ["--avp", "{avp_json}"], "avp_json/avp.json is not a JSON file"),
    ("trap-gen-avp-manifest", GEN + ["--avp", "{avp_manifest}"], "avp_manifest/manifest.json is not a JSON file"),
    ("trap-gen-prior-positions", GEN + ["--prior", "{prior_pos}"], "prior_pos/pca/positions.npy is not a valid .npy"),
    ("trap-gen-prior-manifest", GEN + ["--prior", "{prior_manifest}"], "prior_manifest/manifest.json is not a JSON"),
    ("trap-gen-prior-pca", GEN + ["--prior", "{prior_pca}"], "prior_pca/pca/pca.safetensors is not a valid"),
    ("trap-gen-prior-codes", GEN + ["--prior", "{prior_codes}"], "prior_codes/pca/codes.npy is not a valid .npy"),
    ("trap-gen-store-manifest", GEN + ["--out", "{store_manifest}"], "store_manifest/manifest.json is not a JSON"),
    # ---- export / import / plot epe
    ("export-missing", ["export-sequences", "{tmp}/nope", "--out", "{out}"], "does not exist"),
    ("export-out-file", ["export-sequences", "{store}", "--out", "{file}"], "is a file, expected a directory"),
    (
        "export-template",
        ["export-sequences", "{store}", "--out", "{out}", "--image-path-template", "x.png"],
        "must contain {index}",
    ),
    (
        "trap-export-record",
        ["export-sequences", "{store_record}", "--out", "{out}"],
        "store_record/records/0000000.json is not a JSON file",
    ),
    (
        "trap-export-manifest",
        ["export-sequences", "{store_manifest}", "--out", "{out}"],
        "store_manifest/manifest.json is not a JSON file",
    ),
    ("import-missing", ["import-sequences", "{tmp}/nope", "--grid", "cub", "--out", "{out}"], "does not exist"),
    ("import-out-file", ["import-sequences", "{seqs}", "--grid", "cub", "--out", "{file}"], "is a file"),
    ("trap-import-txt", ["import-sequences", "{seqs}", "--grid", "cub", "--out", "{out}"], "seqs/1.txt is not UTF-8"),
    ("plot-epe-index-neg", PLOT + ["--index", "-1", "--out", "{out}.png"], "--index must be an int >= 0"),
    ("plot-epe-no-record", PLOT + ["--index", "5", "--out", "{out}.png"], "has no record for image 5"),
    ("plot-epe-out-dir", PLOT + ["--out", "{emptydir}"], "is a directory, expected a file path"),
    ("plot-epe-out-suffix", PLOT + ["--out", "{out}.txt"], "must end in .png or .pdf or .svg"),
    (
        "trap-plot-epe-record",
        ["plot", "epe", "{store_record}", "--index", "0", "--out", "{out}.png"],
        "store_record/records/0000000.json is not a JSON file",
    ),
    # ---- build-prior
    ("prior-size-0", PRIOR + ["--database-size", "0"], "--database-size must be an int >= 1"),
    ("prior-components-0", PRIOR + ["--components", "0"], "--components must be an int >= 1"),
    ("prior-fit-samples-0", PRIOR + ["--fit-samples", "0"], "--fit-samples must be an int >= 1"),
    ("prior-chunk-0", PRIOR + ["--chunk-size", "0"], "--chunk-size must be an int >= 1"),
    ("prior-shift-neg", PRIOR + ["--shift", "-1"], "--shift must be an int >= 0"),
    ("prior-out-file", PRIOR + ["--out", "{file}"], "is a file, expected a directory"),
    ("prior-root", PRIOR + ["--root", "x"], "--root is not used"),
    ("prior-out-avp", PRIOR + ["--out", "{avp}"], "holds another kind of artefact"),
    # ---- compare-completion, baselines
    ("compare-nuts-sigma", ["compare-completion", "--out", "{out}", "--nuts-sigma", "0"], "--nuts-sigma must be"),
    ("compare-prior-missing", ["compare-completion", "--out", "{out}", "--prior", "{tmp}/nope"], "--prior"),
    ("compare-vae-width", ["compare-completion", "--out", "{out}", "--vae-width", "0"], "--vae-width must be"),
    ("compare-out-file", ["compare-completion", "--out", "{file}"], "is a file, expected a directory"),
    ("baselines-widths", ["baselines", "--out", "{out}", "--widths", "0"], "--widths must be a finite number > 0"),
    ("baselines-resolutions", ["baselines", "--out", "{out}", "--resolutions", "0"], "--resolutions must be"),
    ("baselines-out-file", ["baselines", "--out", "{file}"], "is a file, expected a directory"),
    ("baselines-attention", ["baselines", "--out", "{out}", "--attention", "x"], "NAME=FILE.json"),
    (
        "trap-baselines-attention",
        ["baselines", "--out", "{out}", "--attention", "a={trap_json}"],
        "trap.json is not a JSON file",
    ),
]


def _tree(path: Path) -> dict | None:
    """Every file and folder under ``path`` with the digest of each file (None: the path does not exist)."""
    if not path.exists() and not path.is_symlink():
        return None
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    out = {}
    for p in sorted(path.rglob("*")):
        rel = str(p.relative_to(path))
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def _fill(argv: list[str], fx: dict, tmp: Path) -> list[str]:
    names = {k: str(v) for k, v in fx.items()} | {"out": str(tmp / "out"), "tmp": str(tmp)}
    return [a.format(**names) for a in argv]


def test_the_table_is_large_enough():
    assert len(CLI_CASES) + len(API_CASES) >= 90
    assert len({c[0] for c in CLI_CASES} | {c[0] for c in API_CASES}) == len(CLI_CASES) + len(API_CASES)
    assert sum(c[0].startswith("trap") for c in CLI_CASES + API_CASES) >= 30


@pytest.mark.parametrize("argv, fragment", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_bad_cli_input_is_named_and_changes_nothing(argv, fragment, fx, tmp_path, capsys):
    argv = _fill(argv, fx, tmp_path)
    before = (_tree(fx["root"]), _tree(tmp_path))
    rc = main(argv)
    captured = capsys.readouterr()
    assert rc == 2, captured.err
    lines = [line for line in captured.err.splitlines() if "error:" in line]
    assert len(lines) == 1 and fragment in lines[0], captured.err
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    assert (_tree(fx["root"]), _tree(tmp_path)) == before  # nothing written, nothing torn
    assert not fx["sentinel"].exists()  # no booby-trapped file was unpickled


def _api_predict_nan(fx):
    from ppl_attention.posterior import load_avp

    avp = load_avp(fx["avp"])
    images = torch.full((2, 1, 60, 60), float("nan"))
    avp.predict(images, torch.tensor([[0], [1]]))


def _api_network_nan(fx):
    from ppl_attention.attention.network import HardAttentionNet, NetworkConfig
    from ppl_attention.sensor import Sensor

    net = HardAttentionNet(Sensor.mnist(), 10, 1, NetworkConfig(hidden=8, glimpse_dim=8))
    images = torch.rand(2, 1, 60, 60)
    images[0, 0, 0, 0] = float("nan")
    net(images, 2, policy="sample", generator=torch.Generator().manual_seed(0))


def _api_network_hidden_0(fx):
    from ppl_attention.attention.network import HardAttentionNet, NetworkConfig
    from ppl_attention.sensor import Sensor

    HardAttentionNet(Sensor.mnist(), 10, 1, NetworkConfig(hidden=0))


def _api_train_config(**kw):
    def call(fx):
        from ppl_attention.attention.trainer import TrainConfig

        TrainConfig(**kw).check()

    return call


def _api_train_avp(**kw):
    def call(fx):
        from ppl_attention.posterior.training import TrainAVPConfig, train_avp

        train_avp(None, None, fx["root"] / "never", TrainAVPConfig(**kw))

    return call


def _api_store_on_file(fx):
    from ppl_attention.design.store import SequenceStore
    from ppl_attention.sensor import Sensor

    SequenceStore.create(fx["file"], {"dataset": "d", "task": "t", "grid": Sensor.mnist(), "T": 2})


def _api_store_record(fx, locations):
    from ppl_attention.design.store import SequenceStore

    SequenceStore.open(fx["store"]).write_record(1, 0, locations)


def _api(name, *args):
    def call(fx):
        import ppl_attention.artifacts as a

        getattr(a, name)(*[fx[x] if isinstance(x, str) and x in fx else x for x in args])

    return call


def _api_load_avp(key):
    def call(fx):
        from ppl_attention.posterior import load_avp

        load_avp(fx[key])

    return call


def _api_open_prior(key):
    def call(fx):
        from ppl_attention.completion.importance import open_prior

        open_prior(fx[key])

    return call


def _api_open_store(key, what="sequences"):
    def call(fx):
        from ppl_attention.design.store import SequenceStore

        store = SequenceStore.open(fx[key])
        store.sequences() if what == "sequences" else store.first_glimpse_epe()

    return call


def _api_epe_first(fx):
    from ppl_attention.attention.supervision import load_first_glimpse_epe

    load_first_glimpse_epe(fx["trap_json"], 81)


def _api_npy(fx):
    from ppl_attention.completion._build import load_array

    load_array(fx["trap_npy"], (1,), np.float32, "codes")


# (id, call(fx), fragment)
API_CASES = [
    ("api-avp-predict-nan", _api_predict_nan, "images hold NaN or infinite values"),
    ("api-network-nan", _api_network_nan, "images hold NaN or infinite values"),
    ("api-network-hidden-0", _api_network_hidden_0, "`hidden` must be an int >= 1"),
    ("api-train-stop-weight", _api_train_config(stop_weight=-1.0), "`stop_weight` must be"),
    ("api-train-iterations", _api_train_config(iterations=0), "`iterations` must be an int >= 1"),
    ("api-train-avp-max-glimpses", _api_train_avp(max_glimpses=0), "`max_glimpses` must be"),
    ("api-train-avp-epochs", _api_train_avp(epochs=0), "`epochs` must be an int >= 1"),
    ("api-store-on-file", _api_store_on_file, "is a file, expected a sequence store directory"),
    ("api-store-record-range", lambda fx: _api_store_record(fx, [1, 999]), "`locations` must lie in [0, 80]"),
    ("api-store-record-length", lambda fx: _api_store_record(fx, [1, 2, 3]), "`locations` must be 2 integer"),
    ("trap-api-load-weights", _api("load_weights", "trap_safetensors"), "trap.safetensors is not a valid"),
    ("trap-api-load-checkpoint", _api("load_checkpoint", "trap_safetensors"), "trap.safetensors is not a valid"),
    ("trap-api-read-json", _api("read_json", "trap_json"), "trap.json is not a JSON file"),
    ("trap-api-weights-pt", _api("load_weights", "trap_pt"), "must be a .safetensors file"),
    ("trap-api-load-avp", _api_load_avp("avp_w"), "avp_w/avp.safetensors is not a valid safetensors file"),
    ("trap-api-load-avp-json", _api_load_avp("avp_json"), "avp_json/avp.json is not a JSON file"),
    ("trap-api-open-prior", _api_open_prior("prior_pos"), "positions.npy is not a valid .npy array"),
    ("trap-api-open-prior-codes", _api_open_prior("prior_codes"), "codes.npy is not a valid .npy array"),
    ("trap-api-store-record", _api_open_store("store_record"), "0000000.json is not a JSON file"),
    ("trap-api-store-first", _api_open_store("store_first", "first"), "first_glimpse.json is not a JSON file"),
    ("trap-api-epe-first", _api_epe_first, "trap.json must hold"),
    ("trap-api-npy", _api_npy, "trap.npy is not a valid .npy array"),
]


@pytest.mark.parametrize("call, fragment", [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_bad_api_input_is_named(call, fragment, fx):
    before = _tree(fx["root"])
    with pytest.raises((ValueError, OSError)) as info:
        call(fx)
    assert fragment in str(info.value)
    assert _tree(fx["root"]) == before
    assert not fx["sentinel"].exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_out_in_a_read_only_folder_is_named(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert main(train_argv(ro / "run")) == 2
        assert "is not writable" in capsys.readouterr().err
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_unexpected_os_errors_are_one_line_with_the_file(tmp_path, capsys, monkeypatch):
    """An OSError the checks could not foresee (disk full, permissions...) is still one named line, exit 2."""
    import ppl_attention.commands.design as design

    def boom(args):
        raise PermissionError(13, "Permission denied", str(tmp_path / "x.json"))

    monkeypatch.setattr(design, "run_export", boom)
    assert main(["export-sequences", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "x.json: Permission denied" in err and "Traceback" not in err
    assert main(["export-sequences", str(tmp_path), "--out", str(tmp_path / "o"), "-v"]) == 2
    assert "Traceback" in capsys.readouterr().err  # -v shows it
