"""No oracle: a completion asked for image i never returns i (generative prior: its digits; database: its rows
and duplicates), an MNIST canvas knows its digits, HeldOut leaves the design images out of the AVP's training,
and an AVP or prior that holds a design image is refused."""

import pytest
import torch

from ppl_attention.artifacts import write_manifest
from ppl_attention.completion.canvas import CanvasPrior, DigitIndex
from ppl_attention.completion.generative import GenerativeCompletion
from ppl_attention.data.mnist import MnistCanvases
from ppl_attention.design.honest import HeldOut, check_avp, check_prior, design_sources
from ppl_attention.sensor import Sensor


def _pool(n=5):
    g = torch.Generator().manual_seed(0)
    digits = (torch.rand(n, 28, 28, generator=g) > 0.7).float() * torch.rand(n, 28, 28, generator=g)
    grid = Sensor(30, 6, stride=6, scales=1)
    prior = CanvasPrior(digits, torch.arange(n) % 10, grid, canvas_size=30, cluttered=False)
    return prior, DigitIndex.fit(digits, components=2, prototypes=2)


@pytest.mark.parametrize("k1", [45, 8])  # 5 digits x 9 offsets: every pair enumerated, then importance sampling
def test_completions_for_image_i_never_return_its_digit(k1):
    prior, index = _pool()
    comp = GenerativeCompletion(prior, index, k1=k1, offset_draws=4, sigma=[400.0])
    loc = torch.tensor([0, 4])
    for digit in range(prior.num_digits):
        canvas = prior.render(prior.digits[[digit]], torch.tensor([4]))
        y = prior.grid.extract(canvas, loc.view(1, -1))[0]
        before = comp.sample(loc, y, 50, generator=torch.Generator().manual_seed(digit))
        if before.diagnostics["mode"] == "enumerate":  # the exact posterior: the oracle, without exclusion
            assert int(before.diagnostics["digit"][before.weights.argmax()]) == digit
        honest = comp.excluding([digit])
        for seed in range(5):
            s = honest.sample(loc, y, 50, generator=torch.Generator().manual_seed(seed))
            assert len(s) > 0 and digit not in s.diagnostics["digit"].tolist()
            assert float(s.weights.sum()) == pytest.approx(1.0, abs=1e-5)
    assert comp.excluded is None  # excluding returns a copy
    with pytest.raises(ValueError, match="digits"):
        comp.excluding([7])
    with pytest.raises(ValueError, match="none of the 5"):
        comp.excluding(range(5))


def test_database_completion_never_returns_the_excluded_rows(tmp_path):
    from ppl_attention.completion.database import GeneratorSource
    from ppl_attention.completion.importance import ImportanceCompletion
    from ppl_attention.completion.prior import build_prior
    from ppl_attention.completion.pca_index import PCAIndexConfig

    grid = Sensor(16, 4, stride=4, scales=1)
    base = torch.rand(6, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    rows = torch.cat([base, base[:2]])  # rows 6 and 7 duplicate rows 0 and 1
    src = GeneratorSource(lambda n, g: (rows[:n], torch.arange(n)), (1, 16, 16), (), "rows", size=8)
    build_prior(tmp_path / "p", src, 8, grid, PCAIndexConfig(components=3, fit_samples=8), chunk_size=8, progress=False)
    comp = ImportanceCompletion.from_prior(tmp_path / "p", k1=50, sigma=[20.0])
    loc = torch.tensor([0, 5])
    image = comp.database.get([0])[0]
    y = grid.extract(image.unsqueeze(0), loc.view(1, -1))[0]
    assert 0 in comp.sample(loc, y, 8, generator=torch.Generator().manual_seed(0)).diagnostics["rows"].tolist()
    s = comp.excluding([0, 6]).sample(loc, y, 8, generator=torch.Generator().manual_seed(0))
    assert not {0, 6} & set(s.diagnostics["rows"].tolist())


def test_an_mnist_canvas_knows_the_digits_it_is_made_of():
    ds = MnistCanvases("train", cluttered=True, size=40, train_digits=30)
    src = ds.source_digits(torch.arange(40))
    assert src.shape == (40, 1 + ds.n_clutter)
    assert torch.equal(src[:, 0], ds.pool_index[torch.arange(40) % 30])
    # replay check: digits of constant, distinct values show on each canvas exactly the digits listed
    ds.digits = (torch.arange(1, 31, dtype=torch.uint8) * 8).view(30, 1, 1).expand(30, 28, 28).contiguous()
    ds._render(0)
    local = {int(p): k for k, p in enumerate(ds.pool_index)}
    for i in range(40):
        seen = set((ds.images_uint8[i].unique() // 8).tolist()) - {0}
        listed = {local[int(d)] + 1 for d in src[i]}
        assert seen <= listed and local[int(src[i, 0])] + 1 in seen


def test_held_out_training_set_drops_every_canvas_of_the_design_digits():
    ds = MnistCanvases("train", size=60, train_digits=20)
    held = HeldOut(ds, 5)
    assert held.held_out["kind"] == "digit" and held.held_out["ids"] == sorted(ds.pool_index[:5].tolist())
    assert len(held) == 60 - 15  # canvases i show digit i mod 20: 3 canvases of each of the 5 digits
    kept = design_sources(ds, held.keep)
    assert not set(kept.tolist()) & set(held.held_out["ids"])
    assert torch.equal(held.images, ds.images[held.keep]) and held.images is held.images  # gathered once
    assert held.grid is ds.grid and held[0]["index"] == held.keep[0]
    with pytest.raises(ValueError, match="none of the 60"):
        HeldOut(ds, 20)  # every digit
    with pytest.raises(ValueError, match=r"`exclude` must be a count .*\[0, 60\], got 61"):
        HeldOut(ds, 61)
    small = MnistCanvases("train", size=8, train_digits=20)  # --train-size 8: fewer canvases than design images
    other = HeldOut(small, 6, design=MnistCanvases("train", size=16, train_digits=20))
    assert other.held_out["ids"] == sorted(ds.pool_index[:6].tolist()) and len(other) == 2


def test_an_avp_trained_on_a_design_image_is_refused(tmp_path):
    ds = MnistCanvases("train", size=20, train_digits=20)
    write_manifest(tmp_path / "all", "avp", {"dataset": "translated-mnist"})
    with pytest.raises(ValueError, match=r"`avp` .*all was trained on digit \d+ of design image 0 of the train"):
        check_avp(tmp_path / "all", ds, "train", [0, 1])
    check_avp(tmp_path / "all", ds, "valid", [0, 1])  # held-out images: nothing to refuse
    write_manifest(tmp_path / "held", "avp", {"held_out": HeldOut(ds, 3).held_out})
    check_avp(tmp_path / "held", ds, "train", [0, 1, 2])
    with pytest.raises(ValueError, match="design image 3 .*1 of the 4"):
        check_avp(tmp_path / "held", ds, "train", [0, 1, 2, 3])


def test_a_prior_rendered_from_the_design_digits_is_refused(tmp_path):
    write_manifest(tmp_path / "p", "prior", {"prior": "database"})
    write_manifest(
        tmp_path / "p" / "database",
        "image-database",
        {"source": {"source": "cluttered-mnist", "split": "train", "cluttered": True}},
    )
    with pytest.raises(ValueError, match=r"`prior` .*p was rendered from the digits of the train split"):
        check_prior(tmp_path / "p", "train")
    check_prior(tmp_path / "p", "valid")


class _Items(torch.utils.data.Dataset):
    """Six 16 x 16 images of the train split; item 5 duplicates item 1."""

    split = "train"

    def __init__(self):
        x = torch.rand(6, 1, 16, 16, generator=torch.Generator().manual_seed(2)).mul(255).round().div(255)
        x[5] = x[1]
        self.x = x

    def __len__(self):
        return 6

    def __getitem__(self, i):
        return {"image": self.x[i], "label": torch.tensor(i % 2)}


@pytest.mark.parametrize("flip", [False, True])
def test_a_database_prior_leaves_out_the_design_rows_and_their_duplicates(tmp_path, flip):
    from ppl_attention.completion.database import DatasetSource
    from ppl_attention.completion.importance import ImportanceCompletion
    from ppl_attention.completion.pca_index import PCAIndexConfig
    from ppl_attention.completion.prior import build_prior
    from ppl_attention.design.honest import prior_exclusions

    items = _Items()
    build_prior(
        tmp_path / "p",
        DatasetSource(items, name="items"),
        6,
        Sensor(16, 4, stride=4, scales=1),
        PCAIndexConfig(components=3, fit_samples=6),
        chunk_size=6,
        flip=flip,
        progress=False,
    )
    comp = ImportanceCompletion.from_prior(tmp_path / "p", k1=20, sigma=[20.0])
    rows = prior_exclusions(comp, tmp_path / "p", items, "train")
    copies = 2 if flip else 1
    # its own row (and mirror), and the row of its duplicate (item 5; that row's mirror is not the image)
    assert rows(1, items[1]["image"]).tolist() == ([2, 3, 10] if flip else [1, 5])
    assert rows(0, items[0]["image"]).tolist() == list(range(0, copies))
    assert prior_exclusions(comp, tmp_path / "p", items, "test") is None  # another split: nothing of it there
