"""docs/own_data.md's digits walkthrough runs from its own text, as the bash block (through the CLI) and as the
Python block (through the pipeline functions), on an ImageFolder-layout folder with no labels.csv, and both give
the same results: the same AVP weights and evaluation, the same prior, the same sequences, the same training runs.

Only sizes are changed, by SCALE, the same way in both blocks (``--flag VALUE`` in bash, ``flag=VALUE`` in
Python); each block runs in its own folder, so its relative ``runs/...`` paths stay as written.  The commands run
in this process with ``--no-progress``, each from the same torch thread count, as a process per command would."""

import importlib.util
import json
import math
import re
import shlex
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

DOC = Path(__file__).resolve().parents[2] / "docs" / "own_data.md"

#: (flag, the documented value, the value here).  Every documented value is replaced, in both blocks.
SCALE = (
    ("epochs", "20", "1"),
    ("draws", "20", "2"),
    ("components", "32", "8"),
    ("fit-samples", "2000", "200"),
    ("num-images", "100", "4"),
    ("num-samples", "50", "4"),
    ("num-supervised", "100", "4"),
    ("exclude-design", "100", "4"),
    ("iterations", "1000", "10"),
)
BASH, PYTHON = "--{flag} {value}", "{flag}={value}"


def _walkthrough() -> tuple[str, str]:
    """The bash and Python blocks of the section "A complete folder run"."""
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## A complete folder run") :]
    section = section[: section.index("\n## ")] if "\n## " in section else section
    (bash,) = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    (python,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return bash, python


def _sized(text: str, form: str) -> dict[str, list[str]]:
    """Every value ``text`` gives each size flag of SCALE (``form``: BASH or PYTHON)."""
    names = {flag: flag if form == BASH else flag.replace("-", "_") for flag, _, _ in SCALE}
    return {
        flag: re.findall(re.escape(form.format(flag=name, value="")) + r"(\w+)", text) for flag, name in names.items()
    }


def _scaled(text: str, form: str) -> str:
    """``text`` with every documented size replaced by the one here."""
    for flag, documented, here in SCALE:
        name = flag if form == BASH else flag.replace("-", "_")
        text, n = re.subn(
            re.escape(form.format(flag=name, value=documented)) + r"\b", form.format(flag=name, value=here), text
        )
        assert n, f"{form.format(flag=name, value=documented)!r} is not in the walkthrough (update SCALE)"
    return text


def test_both_blocks_give_the_same_sizes_and_the_test_replaces_them_all():
    bash, python = _walkthrough()
    documented = {flag: [value] for flag, value, _ in SCALE}
    assert {k: sorted(set(v)) for k, v in _sized(bash, BASH).items()} == documented
    assert _sized(bash, BASH) == _sized(python, PYTHON)  # the same settings, as often, in both blocks
    here = {flag: [value] for flag, _, value in SCALE}
    assert {k: sorted(set(v)) for k, v in _sized(_scaled(bash, BASH), BASH).items()} == here


def _commands(bash: str) -> list[list[str]]:
    """One argv per command: continuation lines joined, comments dropped."""
    joined = bash.replace("\\\n", " ")
    return [argv for line in joined.splitlines() if (argv := shlex.split(line, comments=True))]


def _example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", DOC.parents[1] / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_bash(bash: str) -> None:
    from ppl_attention.cli import main

    threads = torch.get_num_threads()
    for argv in _commands(_scaled(bash, BASH)):
        torch.set_num_threads(threads)  # a process per command: one's --threads does not carry to the next
        if argv[0] == "python":  # an example script, through its main
            assert argv[1].startswith("examples/"), argv
            _example(Path(argv[1]).stem).main(argv[2:])
        else:
            assert argv[0] == "ppl-attention", argv
            assert main([*argv[1:], "--no-progress"]) == 0, argv


#: Entries of a summary that name the run rather than its results: paths, times, the command line.
RUN_SPECIFIC = ("time", "second", "root", "path", "out", "dir", "store", "sequences", "figure", "command")


def _numbers(value):
    """The numbers of a JSON value, by key path (run-specific entries left out, other strings by type)."""
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items() if not any(s in k.lower() for s in RUN_SPECIFIC)}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    return value if isinstance(value, (int, float, bool)) or value is None else type(value).__name__


def _json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def _arrays(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor an artefact saved (safetensors and .npy files, in subfolders too), by file and name."""
    import numpy as np

    arrays = {f"{f.relative_to(folder)}:{k}": v for f in folder.rglob("*.safetensors") for k, v in load_file(f).items()}
    arrays.update({str(f.relative_to(folder)): torch.as_tensor(np.load(f)) for f in folder.rglob("*.npy")})
    assert arrays, f"{folder} holds no arrays"
    return arrays


def _same_arrays(a: Path, b: Path) -> bool:
    x, y = _arrays(a), _arrays(b)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, monkeypatch_module):
    monkeypatch_module.setattr(torch.cuda, "is_available", lambda: False)  # CPU: one deterministic device
    bash, python = _walkthrough()
    cli, py = tmp_path_factory.mktemp("cli"), tmp_path_factory.mktemp("python")
    monkeypatch_module.chdir(cli)
    _run_bash(bash)
    monkeypatch_module.chdir(py)
    exec(compile(_scaled(python, PYTHON), f"{DOC.name} (Python block)", "exec"), {})
    return cli / "runs", py / "runs"


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.mark.slow
def test_both_blocks_run_on_an_image_folder_with_no_labels_csv(runs):
    cli, py = runs
    for folder in (cli / "digits", py / "py-digits"):
        assert not (folder / "labels.csv").exists()
        assert sorted(p.name for p in folder.iterdir()) == [str(d) for d in range(10)]
        assert sum(1 for _ in folder.glob("*/*.png")) == 1797
    for figure in ("digits-dataset.png", "digits-epe.png", "digits-curves.png"):
        assert (cli / figure).is_file()


@pytest.mark.slow
def test_the_cli_and_the_pipeline_give_the_same_results(runs):
    cli, py = runs
    a, b = (lambda name: cli / f"digits-{name}"), (lambda name: py / f"py-digits-{name}")
    # the AVP: the same weights, the same evaluation
    assert _same_arrays(a("avp"), b("avp"))
    ea, eb = _json(a("avp") / "evaluation.json"), _json(b("avp") / "evaluation.json")
    assert _numbers(ea) == _numbers(eb) and math.isfinite(ea["per_glimpses"][-1]["accuracy"])
    # the prior (database and PCA index), the sequences and their EPE maps
    assert _same_arrays(a("prior"), b("prior"))
    from ppl_attention.pipeline import SequencesHandle

    designed = SequencesHandle(a("seqs")).sequences()
    assert designed == SequencesHandle(b("seqs")).sequences() and sorted(designed) == [0, 1, 2, 3]
    sa, sb = SequencesHandle(a("seqs")).load(), SequencesHandle(b("seqs")).load()
    assert all(torch.equal(torch.as_tensor(sa.epe_maps(i)), torch.as_tensor(sb.epe_maps(i))) for i in range(4))
    # the training runs: the same networks, learning curves and final metrics
    for run in ("ram", "ps"):
        assert _same_arrays(a(run), b(run)), run
        assert (a(run) / "log.csv").read_text() == (b(run) / "log.csv").read_text(), run
        ra, rb = _json(a(run) / "summary.json"), _json(b(run) / "summary.json")
        assert _numbers(ra) == _numbers(rb) and ra["num_supervised"] == {"ram": 0, "ps": 4}[run], run
