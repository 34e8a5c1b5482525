import numpy as np
import pytest
import torch

from ppl_attention.sensor import NO_GLIMPSE, Sensor, SensorMismatch, check_sensor
from ppl_attention.sensor_maths import paste_latest


def test_presets_match_the_paper():
    celeba = Sensor.celeba_hq()
    assert celeba.image_size == (224, 224) and celeba.glimpse_size == (16, 16)
    assert celeba.shape == (50, 50)
    assert list(celeba.rows) == [int(x) for x in np.linspace(0, 207, 50)]
    cub = Sensor.cub()
    assert cub.image_size == (128, 128) and cub.glimpse_size == (32, 32)
    assert list(cub.rows) == list(range(0, 97, 8)) and cub.shape == (13, 13)
    mnist = Sensor.mnist()
    assert mnist.image_size == (60, 60) and mnist.glimpse_size == (12, 12)
    assert mnist.rows[-1] + 12 <= 60


def test_flat_index_round_trip_uses_row_major_order():
    grid = Sensor.celeba_hq()
    loc = torch.arange(grid.num_locations)
    px = grid.pixels(loc)
    assert torch.equal(grid.index(px[:, 0], px[:, 1]), loc)
    # Flat index = row_index * n_cols + col_index.
    assert grid.pixels(torch.tensor(1 * 50 + 3)).tolist() == [grid.rows[1], grid.cols[3]]
    assert grid.cell(torch.tensor(53)).tolist() == [1, 3]


def test_extract_matches_slicing_for_single_and_sequences():
    grid = Sensor((20, 30), (4, 6), stride=2)  # non-square image and glimpse
    images = torch.randn(3, 5, 20, 30)
    locs = torch.randint(0, grid.num_locations, (3, 4))
    patches = grid.extract(images, locs)
    assert patches.shape == (3, 4, 5, 4, 6)
    for b in range(3):
        for t in range(4):
            r, c = grid.pixels(locs[b, t]).tolist()
            assert torch.equal(patches[b, t], images[b, :, r : r + 4, c : c + 6])
    single = grid.extract(images, locs[:, 0])
    assert torch.equal(single, patches[:, 0])
    # A leading 1 broadcasts over the batch.
    shared = grid.extract(images, locs[:1])
    assert shared.shape == (3, 4, 5, 4, 6)


def test_mask_unions_overlaps_and_handles_zero_glimpses():
    grid = Sensor(10, 4, stride=2)
    empty = grid.mask(torch.zeros(2, 0, dtype=torch.long))
    assert empty.shape == (2, 1, 10, 10) and empty.sum() == 0
    loc = torch.tensor([[0, 1]])  # (0,0) and (0,2): overlap in cols 2-3
    m = grid.mask(loc)
    assert m.sum() == 4 * 6
    assert m[0, 0, :4, :6].all() and m[0, 0, 4:].sum() == 0
    # NO_GLIMPSE entries are ignored, so batches can hold different lengths.
    padded = grid.mask(torch.tensor([[0, NO_GLIMPSE], [0, 1]]))
    assert padded[0].sum() == 16 and padded[1].sum() == 24


def test_mask_equals_union_of_extracted_regions():
    grid = Sensor.mnist()
    locs = torch.randint(0, grid.num_locations, (8, 5))
    m = grid.mask(locs)
    ones = torch.ones(8, 1, 60, 60)
    assert torch.equal(grid.paste(grid.extract(ones, locs), locs), m)


def test_paste_inverts_extract():
    grid = Sensor.cub()
    images = torch.rand(2, 3, 128, 128)
    locs = torch.tensor([[0, 5, 168], [12, 12, 100]])
    canvas = grid.paste(grid.extract(images, locs), locs)
    m = grid.mask(locs)
    assert torch.equal(canvas * m, images * m)


@pytest.mark.parametrize("bad", [-1, 81, 1000])
def test_out_of_range_locations_are_refused(bad):
    grid = Sensor.mnist()
    with pytest.raises(ValueError, match="locations holds"):
        grid.extract(torch.zeros(1, 1, 60, 60), torch.tensor([bad]))


def test_bad_shapes_and_sizes_are_refused():
    grid = Sensor.mnist()
    with pytest.raises(ValueError, match=r"`images` must have shape \(B, C, H, W\)"):
        grid.extract(torch.zeros(60, 60), torch.tensor([0]))
    with pytest.raises(ValueError, match="to match the grid"):
        grid.extract(torch.zeros(1, 1, 64, 64), torch.tensor([0]))
    with pytest.raises(ValueError, match="batch size"):
        grid.extract(torch.zeros(2, 1, 60, 60), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        grid.mask(torch.tensor([0.5]))
    with pytest.raises(ValueError, match="larger than image_size"):
        Sensor(10, 12)
    with pytest.raises(ValueError, match="`rows` must lie"):
        Sensor(10, 4, rows=[0, 7])
    with pytest.raises(ValueError, match="not on the grid"):
        grid.index(torch.tensor([1]), torch.tensor([0]))


def test_grid_serialises():
    grid = Sensor.celeba_hq()
    assert Sensor.from_dict(grid.to_dict()) == grid


# ----------------------------------------------------------------------------------------- the multi-scale sensor
def reference_retina(image, grid, loc):
    """One glimpse written out naively: per scale, crop the zero-padded image around the fovea's centre and
    average-pool it to the fovea's size; (k*C, h, w)."""
    import torch.nn.functional as F

    (h, w), pad = grid.glimpse_size, max(grid.patch_sizes[-1])
    padded = F.pad(image, (pad, pad, pad, pad))
    r, c = grid.pixels(torch.tensor(loc)).tolist()
    out = []
    for j, (sh, sw) in enumerate(grid.patch_sizes):
        top, left = r + pad - (sh - h) // 2, c + pad - (sw - w) // 2
        out.append(F.avg_pool2d(padded[None, :, top : top + sh, left : left + sw], grid.scale_factor**j)[0])
    return torch.cat(out, 0)


@pytest.mark.parametrize(
    "grid",
    [Sensor.retina(), Sensor(30, (4, 6), stride=2, scales=3), Sensor(20, 3, stride=1, scales=2, scale_factor=3)],
    ids=["mnist-retina", "non-square", "factor-3"],
)
def test_every_scale_equals_a_reference_crop_and_pool_at_the_centre_and_every_border(grid):
    images = torch.rand(2, 2, *grid.image_size, generator=torch.Generator().manual_seed(0))
    R, C = grid.shape
    # the centre, the four corners and the middle of each edge: every border the coarse patches reach past
    cells = [
        (R // 2, C // 2),
        (0, 0),
        (0, C - 1),
        (R - 1, 0),
        (R - 1, C - 1),
        (0, C // 2),
        (R - 1, C // 2),
        (R // 2, 0),
        (R // 2, C - 1),
    ]
    locs = torch.tensor([r * C + c for r, c in cells])
    got = grid.extract(images, locs.expand(2, -1))  # (2, 9, k*C, h, w)
    assert got.shape == (2, len(cells), grid.scales * 2) + grid.glimpse_size
    for b in range(2):
        for t, loc in enumerate(locs.tolist()):
            assert torch.allclose(got[b, t], reference_retina(images[b], grid, loc), atol=1e-6), (b, loc)
    # the fovea is the paper's full-resolution patch, bit for bit
    assert torch.equal(got[:, :, :2], grid.crop(images, locs.expand(2, -1)))


def test_one_scale_is_the_papers_patch_and_the_presets_keep_one_scale():
    for grid in (Sensor.celeba_hq(), Sensor.cub()):
        assert grid.scales == 1 and grid.patch_sizes == (grid.glimpse_size,)
        images = torch.rand(1, 3, *grid.image_size)
        loc = torch.tensor([[0, grid.num_locations - 1]])
        assert torch.equal(grid.extract(images, loc), grid.crop(images, loc))
        canvas, mask = grid.observe(images, loc)
        assert torch.equal(mask, grid.mask(loc)) and torch.equal(canvas, images * mask)
    assert Sensor.retina().patch_sizes == ((12, 12), (24, 24), (48, 48))


def test_masks_cover_each_scales_square_inside_the_image():
    grid = Sensor.retina()
    m = grid.mask(torch.tensor([[0]]))  # top-left corner: the coarse squares start above and left of the image
    assert m.shape == (1, 3, 60, 60)
    assert [int(m[0, j].sum()) for j in range(3)] == [12 * 12, 18 * 18, 30 * 30]
    assert m[0, 2, :30, :30].all() and not m[0, 2, 30:].any()
    centre = grid.mask(torch.tensor([[40]]))  # (24, 24): every scale inside the image
    assert [int(centre[0, j].sum()) for j in range(3)] == [144, 576, 2304]
    assert torch.equal(grid.mask(torch.tensor([[NO_GLIMPSE, 40]])), centre)


def test_paste_fills_each_block_with_its_pooled_value_and_the_later_glimpse_wins():
    grid = Sensor.retina()
    images = torch.rand(1, 1, 60, 60, generator=torch.Generator().manual_seed(1))
    canvas, mask = grid.observe(images, torch.tensor([[40]]))  # fovea at (24, 24): coarse squares at 18, 6
    many = torch.tensor([[0, 40, NO_GLIMPSE, 80], [3, 3, 77, 12]])
    assert torch.equal(grid.observe(images.expand(2, -1, -1, -1), many)[1], grid.mask(many))
    assert torch.equal(canvas[0, 0][mask[0, 0].bool()], images[0, 0][mask[0, 0].bool()])
    assert torch.allclose(canvas[0, 1, 18:20, 18:20], images[0, 0, 18:20, 18:20].mean().expand(2, 2))
    assert torch.allclose(canvas[0, 2, 6:10, 6:10], images[0, 0, 6:10, 6:10].mean().expand(4, 4))
    assert float(canvas[0, 1][~mask[0, 1].bool()].abs().sum()) == 0  # nothing outside what was seen
    # two glimpses whose coarse blocks are misaligned: where they overlap, the later one's blocks show
    a, b = grid.observe(images, torch.tensor([[40, 41]]))[0], grid.observe(images, torch.tensor([[41]]))[0]
    later = grid.mask(torch.tensor([[41]]))[0].bool()
    assert torch.equal(a[0][later], b[0][later])
    # with NO_GLIMPSE padding and with one scale the general paste equals the direct scatter
    one = Sensor.mnist()
    loc = torch.randint(0, 81, (3, 4), generator=torch.Generator().manual_seed(2))
    patches = one.extract(torch.rand(3, 2, 60, 60), loc)
    assert torch.equal(one.paste(patches, loc), paste_latest(one, patches, loc, torch.zeros(3, 2, 60, 60))[0])


def test_sensor_serialises_and_old_grids_read_as_one_scale():
    retina = Sensor.retina()
    assert Sensor.from_dict(retina.to_dict()) == retina and retina.to_dict()["scales"] == 3
    old = {k: v for k, v in Sensor.mnist().to_dict().items() if k not in ("scales", "scale_factor")}
    assert Sensor.from_dict(old) == Sensor.mnist()
    assert Sensor.mnist().with_scales(3) == retina


def test_a_sensor_mismatch_names_both_sensors():
    check_sensor(Sensor.retina().to_dict(), Sensor.retina(), "x")
    with pytest.raises(
        SensorMismatch,
        match=r"the AVP was made for sensor 9x9 locations on 60x60, 12x12 glimpses, "
        r"1 scale, but the store is 9x9 .* 3 scales \(12, 24, 48 px",
    ):
        check_sensor(Sensor.mnist(), Sensor.retina(), "the AVP", "the store")
    assert issubclass(SensorMismatch, ValueError)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"scales": 0}, "`scales` must be an int >= 1"),
        ({"scales": 2, "scale_factor": 1}, "`scale_factor` must be an int >= 2"),
        ({"scales": 2.0}, "`scales` must be an int"),
        ({"scales": 2, "glimpse_size": 3}, "cannot centre the scale-1 patch"),
    ],
)
def test_bad_retinas_are_refused(kwargs, message):
    args = {"image_size": 20, "glimpse_size": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        Sensor(args.pop("image_size"), args.pop("glimpse_size"), **args)
