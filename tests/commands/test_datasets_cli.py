import pytest

from ppl_attention.cli import main
from ppl_attention.data import DATASETS
from ppl_attention.data.fixtures import make_cub_folder

PNG = b"\x89PNG\r\n\x1a\n"


def test_list(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in DATASETS:
        assert name in out
    assert "needs --root" in out and "9x9 = 81" in out
    assert main(["datasets", "list"]) == 0


def test_show_cluttered_mnist(tmp_path, capsys):
    out = tmp_path / "mnist.png"
    assert main(["datasets", "show", "cluttered-mnist", "--split", "test", "--n", "4", "--out", str(out)]) == 0
    assert out.read_bytes().startswith(PNG)
    text = capsys.readouterr().out
    assert "items: 500" in text and "9x9 locations" in text


def test_show_cub_from_root(tmp_path):
    root = make_cub_folder(tmp_path / "cub", n_classes=2, per_class=3)
    out = tmp_path / "cub.png"
    assert (
        main(
            [
                "datasets",
                "show",
                "cub",
                "--root",
                str(root),
                "--split",
                "test",
                "--out",
                str(out),
                "--option",
                "valid_size=1",
            ]
        )
        == 0
    )
    assert out.read_bytes().startswith(PNG)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["datasets", "show", "nope", "--out", "x.png"], "dataset name must be one of"),
        (["datasets", "show", "cub", "--out", "x.png"], "needs --root (its folder)"),
        (["datasets", "show", "cluttered-mnist", "--n", "0", "--out", "x.png"], "--n must be"),
        (["datasets", "show", "cluttered-mnist", "--option", "size", "--out", "x.png"], "KEY=VALUE"),
        (["datasets", "show", "cluttered-mnist", "--option", "colour=1", "--out", "x.png"], "takes no option"),
    ],
)
def test_show_errors(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
