"""ArchSpec: validation, CLI-style parsing, TOML tables and lossless JSON round trips."""

from __future__ import annotations

import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from revprof import ArchSpec, RevprofError, parse_patch, spec_from_options, validate_patch
from revprof.spec import parse_reversible, widths_from


def test_paper_defaults():
    spec = spec_from_options()
    assert spec == ArchSpec.paper_revunet()
    assert spec.widths == (60, 120, 240, 360, 480)
    assert spec.execution == "reversible"
    assert spec_from_options(arch="nonewnet") == ArchSpec.paper_nonewnet()


def test_width_growth_and_cap():
    assert widths_from(30, 5) == (30, 60, 120, 240, 480)
    spec = spec_from_options(width=16, levels=4, max_width=64)
    assert spec.widths == (16, 32, 64, 64)
    assert spec.groups == 8  # the paper's 30 does not divide 8-channel halves


def test_depth_forms():
    spec = spec_from_options(depth="2", encoder_depth="1,2,3,4,4", decoder_depth=1)
    assert spec.encoder_depth == (1, 2, 3, 4, 4)
    assert spec.decoder_depth == (1, 1, 1, 1, 1)
    assert spec_from_options(depth=3).encoder_depth == (3,) * 5


@pytest.mark.parametrize(
    ("value", "encoder", "decoder"),
    [
        pytest.param("all", (1, 1, 1), (1, 1, 1), id="all"),
        pytest.param("none", (0, 0, 0), (0, 0, 0), id="none"),
        pytest.param("encoder", (1, 1, 1), (0, 0, 0), id="encoder"),
        pytest.param("decoder", (0, 0, 0), (1, 1, 1), id="decoder"),
        pytest.param("1,1,0", (1, 1, 0), (1, 1, 0), id="per-level"),
    ],
)
def test_reversibility_patterns(value, encoder, decoder):
    enc, dec = parse_reversible(value, 3)
    assert enc == tuple(map(bool, encoder)) and dec == tuple(map(bool, decoder))


def test_execution_views():
    spec = ArchSpec.paper_revunet(2)
    assert spec.with_execution("plain").execution == "plain"
    assert spec.with_execution("checkpoint").execution == "checkpoint"
    mixed = spec_from_options(reversible="1,1,1,0,0", checkpoint=True)
    assert mixed.execution == "mixed"
    assert mixed.level_execution(3, "encoder") == "checkpoint"
    assert mixed.level_execution(0, "decoder") == "reversible"
    assert "RRR--" in mixed.describe()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"widths": "60,121,240"}, "widths[1]=121 must be even", id="odd-width"),
        pytest.param({"widths": "60,120", "groups": 7}, "groups=7 must divide half of widths[0]=60",
                     id="groups"),
        pytest.param({"depth": "1,2"}, "encoder_depth must have one entry or levels=5 entries; got 2",
                     id="depth-length"),
        pytest.param({"reversible": "1,0"}, "reversible must have levels=5 entries", id="rev-length"),
        pytest.param({"reversible": "encodr"}, "did you mean 'encoder'?", id="rev-name"),
        pytest.param({"arch": "revnet"}, "did you mean 'revunet'?", id="arch-name"),
        pytest.param({"levels": 1}, "levels must be from 2 to 10; got 1", id="levels"),
        pytest.param({"arch": "nonewnet", "reversible": "all"}, "nonewnet' has no reversible levels",
                     id="nonewnet-reversible"),
        pytest.param({"depth": 0}, "encoder_depth[0] must be from 1 to 64 blocks; got 0", id="depth-zero"),
        pytest.param({"width": 16, "widths": "16,32"}, "either width", id="width-and-widths"),
    ],
)
def test_invalid_specs_name_field_rule_and_value(options, message):
    with pytest.raises(RevprofError) as error:
        spec_from_options(**options)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_patch_parsing_and_divisibility():
    assert parse_patch("128") == (128, 128, 128)
    assert parse_patch("160,192,160") == (160, 192, 160)
    spec = ArchSpec.paper_revunet()
    assert validate_patch(spec, "160,192,160") == (160, 192, 160)
    with pytest.raises(RevprofError, match=r"axis H=100 must be divisible by 2\^\(levels-1\)=16.*96 or 112"):
        validate_patch(spec, (96, 100, 96))
    for bad in ("12a", "1,2", "0", "-16"):
        with pytest.raises(RevprofError, match="patch must be one size"):
            parse_patch(bad)


def test_toml_table_with_user_keys():
    table = tomllib.loads("""
        [network]
        arch = "revunet"
        widths = [60, 120, 240, 360, 480]
        encoder_depth = 3
        decoder_depth = 1
        reversible = "encoder"
        checkpoint = true
    """)["network"]
    spec = ArchSpec.from_dict(table)
    assert spec.encoder_depth == (3,) * 5
    assert spec.encoder_reversible == (True,) * 5 and spec.decoder_reversible == (False,) * 5
    assert spec.checkpoint
    with pytest.raises(RevprofError, match="did you mean 'widths'"):
        ArchSpec.from_dict({"widthss": [60, 120]})


def test_partial_tables_take_the_defaults_of_their_arch():
    spec = ArchSpec.from_dict({"arch": "nonewnet", "widths": [30, 60, 120, 240, 480]})
    assert spec == ArchSpec.paper_nonewnet()
    assert ArchSpec.from_dict({"widths": [60, 120, 240, 360, 480]}) == ArchSpec.paper_revunet()


def test_json_errors_are_one_line():
    with pytest.raises(RevprofError, match="not valid JSON"):
        ArchSpec.from_json("{nope")


@st.composite
def specs(draw) -> ArchSpec:
    arch = draw(st.sampled_from(["revunet", "nonewnet"]))
    levels = draw(st.integers(2, 6))
    groups = draw(st.sampled_from([1, 2, 4]))
    unit = 2 * groups if arch == "revunet" else groups
    widths = draw(st.lists(st.integers(1, 40).map(lambda k: k * unit), min_size=levels, max_size=levels))
    if arch == "nonewnet":
        return ArchSpec(arch=arch, widths=widths, encoder_depth=(1,) * levels, decoder_depth=(1,) * levels,
                        encoder_reversible=(False,) * levels, decoder_reversible=(False,) * levels,
                        checkpoint=draw(st.booleans()), groups=groups)
    depth = st.lists(st.integers(1, 8), min_size=levels, max_size=levels)
    flags = st.lists(st.booleans(), min_size=levels, max_size=levels)
    return ArchSpec(arch=arch, widths=widths, encoder_depth=draw(depth), decoder_depth=draw(depth),
                    encoder_reversible=draw(flags), decoder_reversible=draw(flags),
                    checkpoint=draw(st.booleans()), in_channels=draw(st.integers(1, 6)),
                    out_channels=draw(st.integers(1, 4)), groups=groups)


@settings(max_examples=200, deadline=None)
@given(specs())
def test_dict_and_json_round_trip(spec):
    assert ArchSpec.from_dict(spec.to_dict()) == spec
    assert ArchSpec.from_json(spec.to_json()) == spec
    assert ArchSpec.from_json(spec.to_json()).to_json() == spec.to_json()
