"""The registry of prior kinds: every kind's settings exist where they are read, and a manifest naming no known
kind is refused."""

import dataclasses

import pytest

from ppl_attention.artifacts import write_manifest
from ppl_attention.completion.importance import PRIOR_KIND
from ppl_attention.completion.prior import PRIORS, open_completion, prior_kind


def test_an_unknown_kind_names_the_prior_and_the_known_kinds(tmp_path):
    write_manifest(tmp_path / "p", PRIOR_KIND, {"prior": "mystery"})
    with pytest.raises(
        ValueError,
        match=r"`prior` .*p is a 'mystery' prior; the known kinds are \['generative', "
        r"'database'\]",
    ):
        open_completion(tmp_path / "p")


def test_each_kind_is_read_from_its_manifest(tmp_path):
    for name in PRIORS:
        write_manifest(tmp_path / name, PRIOR_KIND, {"prior": name})
        assert prior_kind(tmp_path / name) is PRIORS[name]


def test_the_kinds_settings_are_the_cli_and_design_settings_they_name():
    from ppl_attention.commands.prior import BuildPriorConfig
    from ppl_attention.design.images import ImageFactory

    build = {f.name: f for f in dataclasses.fields(BuildPriorConfig)}
    design = {f.name for f in dataclasses.fields(ImageFactory)}
    assert build["kind"].metadata["choices"] == list(PRIORS)
    for kind in PRIORS.values():
        assert set(kind.build_options) <= set(build) and set(kind.sampler_options) <= design, kind.name
