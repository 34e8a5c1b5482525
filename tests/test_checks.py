"""The library's argument checks: one style, the argument named (in backticks for a name, as given for a flag)."""

import numpy as np
import pytest

from ppl_attention.checks import check_choice, check_int, check_number


@pytest.mark.parametrize("value", [0, -3, 1.0, True, "2", None, np.bool_(True)])
def test_check_int_refuses_what_is_not_a_positive_int(value):
    with pytest.raises(ValueError, match=r"^`num_images` must be an int >= 1, got "):
        check_int("num_images", value)


def test_check_int_accepts_ints_in_range_and_optional_none():
    assert check_int("k", 3) == 3 and check_int("k", np.int64(2)) == 2
    assert check_int("k", 0, minimum=0) == 0 and check_int("k", None, optional=True) is None
    with pytest.raises(ValueError, match=r"`k` must be an int in \[1, 4\], got 5"):
        check_int("k", 5, maximum=4)
    with pytest.raises(ValueError, match=r"^--num-images must be an int >= 1, got 0$"):  # a flag stays as given
        check_int("--num-images", 0)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -0.5, True, "1"])
def test_check_number_refuses_what_is_not_a_finite_non_negative_number(value):
    with pytest.raises(ValueError, match=r"^`lr` must be a finite number >= 0"):
        check_number("lr", value)


def test_check_number_bounds():
    assert check_number("p", 0.0) == 0.0 and check_number("p", np.float32(0.5), maximum=1.0) == 0.5
    with pytest.raises(ValueError, match=r"`p` must be a finite number > 0, got 0"):
        check_number("p", 0, strict=True)
    with pytest.raises(ValueError, match=r"`p` must be a finite number >= 0 and <= 1, got 1.5"):
        check_number("p", 1.5, maximum=1.0)


def test_check_choice_lists_the_choices():
    assert check_choice("split", "valid", ("valid", "test")) == "valid"
    with pytest.raises(ValueError, match=r"`split` must be one of \['valid', 'test'\], got 'train'"):
        check_choice("split", "train", ("valid", "test"))
