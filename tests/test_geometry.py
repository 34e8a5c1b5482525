import numpy as np
import pytest
import torch

from ppl_attention.geometry import NO_GLIMPSE, GlimpseGrid


def test_presets_match_the_paper():
    celeba = GlimpseGrid.celeba_hq()
    assert celeba.image_size == (224, 224) and celeba.glimpse_size == (16, 16)
    assert celeba.shape == (50, 50)
    assert list(celeba.rows) == [int(x) for x in np.linspace(0, 207, 50)]
    cub = GlimpseGrid.cub()
    assert cub.image_size == (128, 128) and cub.glimpse_size == (32, 32)
    assert list(cub.rows) == list(range(0, 97, 8)) and cub.shape == (13, 13)
    mnist = GlimpseGrid.mnist()
    assert mnist.image_size == (60, 60) and mnist.glimpse_size == (12, 12)
    assert mnist.rows[-1] + 12 <= 60


def test_flat_index_round_trip_uses_row_major_order():
    grid = GlimpseGrid.celeba_hq()
    loc = torch.arange(grid.num_locations)
    px = grid.pixels(loc)
    assert torch.equal(grid.index(px[:, 0], px[:, 1]), loc)
    # Flat index = row_index * n_cols + col_index.
    assert grid.pixels(torch.tensor(1 * 50 + 3)).tolist() == [grid.rows[1], grid.cols[3]]
    assert grid.cell(torch.tensor(53)).tolist() == [1, 3]


def test_extract_matches_slicing_for_single_and_sequences():
    grid = GlimpseGrid((20, 30), (4, 6), stride=2)  # non-square image and glimpse
    images = torch.randn(3, 5, 20, 30)
    locs = torch.randint(0, grid.num_locations, (3, 4))
    patches = grid.extract(images, locs)
    assert patches.shape == (3, 4, 5, 4, 6)
    for b in range(3):
        for t in range(4):
            r, c = grid.pixels(locs[b, t]).tolist()
            assert torch.equal(patches[b, t], images[b, :, r:r + 4, c:c + 6])
    single = grid.extract(images, locs[:, 0])
    assert torch.equal(single, patches[:, 0])
    # A leading 1 broadcasts over the batch.
    shared = grid.extract(images, locs[:1])
    assert shared.shape == (3, 4, 5, 4, 6)


def test_mask_unions_overlaps_and_handles_zero_glimpses():
    grid = GlimpseGrid(10, 4, stride=2)
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
    grid = GlimpseGrid.mnist()
    locs = torch.randint(0, grid.num_locations, (8, 5))
    m = grid.mask(locs)
    ones = torch.ones(8, 1, 60, 60)
    assert torch.equal(grid.paste(grid.extract(ones, locs), locs), m)


def test_paste_inverts_extract():
    grid = GlimpseGrid.cub()
    images = torch.rand(2, 3, 128, 128)
    locs = torch.tensor([[0, 5, 168], [12, 12, 100]])
    canvas = grid.paste(grid.extract(images, locs), locs)
    m = grid.mask(locs)
    assert torch.equal(canvas * m, images * m)


@pytest.mark.parametrize("bad", [-1, 81, 1000])
def test_out_of_range_locations_are_refused(bad):
    grid = GlimpseGrid.mnist()
    with pytest.raises(ValueError, match="locations holds"):
        grid.extract(torch.zeros(1, 1, 60, 60), torch.tensor([bad]))


def test_bad_shapes_and_sizes_are_refused():
    grid = GlimpseGrid.mnist()
    with pytest.raises(ValueError, match=r"images must have shape \(B, C, H, W\)"):
        grid.extract(torch.zeros(60, 60), torch.tensor([0]))
    with pytest.raises(ValueError, match="to match the grid"):
        grid.extract(torch.zeros(1, 1, 64, 64), torch.tensor([0]))
    with pytest.raises(ValueError, match="batch size"):
        grid.extract(torch.zeros(2, 1, 60, 60), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        grid.mask(torch.tensor([0.5]))
    with pytest.raises(ValueError, match="larger than image_size"):
        GlimpseGrid(10, 12)
    with pytest.raises(ValueError, match="rows must lie"):
        GlimpseGrid(10, 4, rows=[0, 7])
    with pytest.raises(ValueError, match="not on the grid"):
        grid.index(torch.tensor([1]), torch.tensor([0]))


def test_grid_serialises():
    grid = GlimpseGrid.celeba_hq()
    assert GlimpseGrid.from_dict(grid.to_dict()) == grid
