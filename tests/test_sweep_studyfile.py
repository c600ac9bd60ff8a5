"""Study files: the shipped ones load, and invalid ones get messages naming the key and the problem."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from revprof.errors import RevprofError
from revprof.spec import ArchSpec
from revprof.sweep.space import check_enqueued, suggest
from revprof.sweep.studyfile import parse_study, read_study_file
from revprof.units import parse_bytes

STUDIES = Path(__file__).resolve().parent.parent / "studies"

MINIMAL = {
    "study": {"name": "t", "trials": 3},
    "fixed": {"patch": 16, "steps": 2},
    "space": {"levels": 2, "width": [4, 8]},
}


def parse(changes: dict) -> object:
    raw = {k: dict(v) for k, v in MINIMAL.items()}
    for table, values in changes.items():
        if values is None:
            raw.pop(table, None)
        elif isinstance(values, list):
            raw[table] = values
        else:
            raw.setdefault(table, {}).update(values)
    return parse_study(raw, "t.toml")


class FakeTrial:
    """Answers suggest_* from a dict; records what was asked."""

    def __init__(self, values: dict, user_attrs: dict | None = None) -> None:
        self.values = values
        self.user_attrs = user_attrs or {}
        self.asked: list[str] = []

    def suggest_categorical(self, name, choices):
        self.asked.append(name)
        value = self.values.get(name, choices[0])
        assert value in choices, (name, value, choices)
        return value

    def suggest_int(self, name, low, high, step=1, log=False):
        self.asked.append(name)
        value = self.values.get(name, low)
        assert low <= value <= high
        return value


@pytest.mark.parametrize("name", ["quick", "paper", "budget"])
def test_shipped_study_files_load(name: str) -> None:
    study = read_study_file(STUDIES / f"{name}.toml")
    check_enqueued(study)
    assert study.name == name
    assert study.objectives[:2] == ("dice", "peak_bytes")
    assert study.to_dict()["name"] == name


def test_quick_study_is_small() -> None:
    study = read_study_file(STUDIES / "quick.toml")
    assert study.trials <= 8
    assert study.fixed.patch == (32, 32, 32) and study.recipe.steps <= 100
    assert study.data.path is None and max(study.data.synthetic_shape) <= 64
    assert study.level_counts() == [3]
    assert max(study.space["width"].values()) <= 16


def test_paper_study_enqueues_the_papers_networks() -> None:
    study = read_study_file(STUDIES / "paper.toml")
    built = [suggest(FakeTrial(e.params, e.user_attrs()), study) for e in study.enqueue]
    assert len(built) == study.trials == 8
    nonewnet = ArchSpec.paper_nonewnet()
    assert built[0] == (nonewnet, (128, 128, 128))
    for depth, (spec, patch) in zip((1, 2, 3, 4), built[1:5], strict=True):
        assert spec.widths == (60, 120, 240, 360, 480) and patch == (128, 128, 128)
        assert spec.encoder_depth == (depth,) * 5 and spec.decoder_depth == (1,) * 5
        assert spec.execution == "reversible"
    wide, patch = built[5]
    assert wide.widths == (100, 200, 300, 400, 500) and wide.encoder_depth == (3,) * 5
    assert built[6] == (ArchSpec.paper_revunet(), (160, 192, 160))
    assert built[7] == (nonewnet, (160, 192, 160))


def test_budget_study_has_the_papers_gpu_class() -> None:
    study = read_study_file(STUDIES / "budget.toml")
    assert study.budget_bytes == parse_bytes("11GiB")
    assert study.fixed.patch == (128, 128, 128)
    assert study.per_level_reversible


def test_suggest_skips_what_does_not_apply() -> None:
    study = parse({"space": {"arch": ["revunet", "nonewnet"], "depth": {"low": 1, "high": 3},
                             "reversible": ["all", "none"]}})
    trial = FakeTrial({"arch": "nonewnet", "width": 8})
    spec, patch = suggest(trial, study)
    assert spec.arch == "nonewnet" and patch == (16, 16, 16)
    assert trial.asked == ["arch", "width"]  # no depth or reversibility for the baseline
    trial = FakeTrial({"arch": "revunet", "depth": 3, "reversible": "none"})
    spec, _ = suggest(trial, study)
    assert spec.encoder_depth == (3, 3) and spec.execution == "plain"


def test_per_level_depth_and_reversibility() -> None:
    study = parse({"space": {"levels": 3, "width": 8, "encoder_depth": {"low": 1, "high": 3},
                             "per_level_depth": True, "per_level_reversible": True}})
    trial = FakeTrial({"encoder_depth_0": 3, "encoder_depth_2": 2, "reversible_1": False})
    spec, _ = suggest(trial, study)
    assert spec.encoder_depth == (3, 1, 2) and spec.decoder_depth == (1, 1, 1)
    assert spec.encoder_reversible == (True, False, True) == spec.decoder_reversible
    assert study.grid()["reversible_2"] == [True, False]


def test_searched_patch_and_fixed_spec_enqueue() -> None:
    raw = {k: dict(v) for k, v in MINIMAL.items()}
    del raw["fixed"]["patch"]
    raw["space"]["patch"] = [16, "16,32,16"]
    raw["enqueue"] = [{"patch": "16,32,16", "width": 4},
                      {"label": "fixed", "spec": {"levels": 2, "width": 6}, "patch": 32}]
    study = parse_study(raw, "t.toml")
    assert study.space["patch"].values() == ["16,16,16", "16,32,16"]
    spec, patch = suggest(FakeTrial(study.enqueue[0].params), study)
    assert patch == (16, 32, 16) and spec.widths == (4, 8)
    spec, patch = suggest(FakeTrial({}, study.enqueue[1].user_attrs()), study)
    assert spec.widths == (6, 12) and patch == (32, 32, 32)


@pytest.mark.parametrize(("changes", "expected"), [
    ({"study": {"nmae": "x"}}, "study.nmae is not a known key; known: name, description, trials, "
                               "objectives, budget, device_memory (did you mean 'name'?)"),
    ({"spaec": {}}, "[spaec] is not a known key"),
    ({"space": {"depht": 2}}, "space.depht is not a known key; known: arch, levels, width, "),
    ({"space": {"depht": 2}}, "(did you mean 'depth'?)"),
    ({"study": {"trials": "many"}}, "study.trials must be a whole number; got 'many'"),
    ({"study": {"trials": 0}}, "study.trials must be at least 1; got 0"),
    ({"study": {"budget": "11 gigs"}}, "study.budget memory size must be a number with a unit"),
    ({"study": {"objectives": ["dice", "memory"]}}, "study.objectives unknown objective 'memory'"),
    ({"study": {"objectives": ["dice"]}}, "study.objectives must include \"dice\" and \"peak_bytes\""),
    ({"space": None}, "[space] table is missing"),
    ({"study": {"name": "two words"}}, "study.name must be a non-empty name without spaces"),
    ({"fixed": {"precision": "fp33"}}, "fixed.precision must be one of fp32, bf16, fp16; got 'fp33' "
                                      "(did you mean 'fp32'?)"),
    ({"fixed": {"patch": "16,16"}}, "fixed.patch must be one size like 128 or three"),
    ({"fixed": {"device": "tpu"}}, "fixed.device must be auto, cpu, cuda or cuda:N; got 'tpu'"),
    ({"space": {"width": [5, 8]}}, "width=5 gives an invalid network: widths[0]=5 must be even"),
    ({"space": {"levels": 6}}, "levels=6, width=4 gives an invalid network: patch 16x16x16: "
                               "axis D=16 must be divisible by 2^(levels-1)=32"),
    ({"space": {"depth": {"low": 3, "high": 1}}}, "space.depth has high=1 below low=3"),
    ({"space": {"depth": {"low": 1, "hi": 3}}}, "space.depth.hi is not a known key"),
    ({"space": {"growth": {"low": 1, "high": 2}}}, "space.growth takes a value or a list of choices"),
    ({"space": {"reversible": ["all", "sometimes"]}}, "space.reversible must be all, none, encoder, "
                                                      "decoder or a per-level pattern"),
    ({"space": {"arch": "nonewnet", "reversible": "all"}}, "space.reversible applies to arch 'revunet' only"),
    ({"space": {"widths": ["8,16"]}}, "space.width cannot be combined with space.widths"),
    ({"space": {"width": [4, 4]}}, "space.width lists a choice twice"),
    ({"space": {"patch": [16]}}, "space.patch the patch is either fixed ([fixed] patch) or searched"),
    ({"sampler": {"name": "cmaes"}}, "sampler.name must be one of tpe, nsga2, random, grid"),
    ({"sampler": {"name": "random", "population_size": 8}}, "sampler.population_size applies to "
                                                           "sampler 'nsga2' only"),
    ({"enqueue": [{"width": 6}]}, "enqueue[0].width = 6 is not in the space (4, 8)"),
    ({"enqueue": [{"depth": 2}]}, "enqueue[0].depth is not a searched parameter of this study; "
                                  "searched: width"),
    ({"enqueue": [{"spec": {"widht": 4}}]}, "enqueue[0].spec spec key must be one of"),
    ({"data": {"synthetic_cases": 2}, "fixed": {"val_cases": 2}},
     "fixed.val_cases = 2 leaves no training case among data.synthetic_cases=2"),
])
def test_invalid_study_files_name_the_key(changes: dict, expected: str) -> None:
    with pytest.raises(RevprofError) as error:
        parse(changes)
    message = str(error.value)
    assert message.startswith("t.toml: ")
    assert expected in message, message
    assert "\n" not in message


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(RevprofError, match="does not exist"):
        read_study_file(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[study\nname = 1\n")
    with pytest.raises(RevprofError, match=r"bad.toml: not valid TOML"):
        read_study_file(bad)


def test_study_file_dict_is_json_and_identity_ignores_trials() -> None:
    import json

    a = parse({})
    b = parse({"study": {"trials": 9}})
    json.dumps(a.to_dict())
    assert a.identity() == b.identity()
    assert a.identity() != parse({"fixed": {"steps": 3}}).identity()
    raw = tomllib.loads((STUDIES / "quick.toml").read_text())
    assert parse_study(raw, "q").to_dict()["fixed"]["patch"] == [32, 32, 32]


def test_errors_carry_their_field_and_problem() -> None:
    """Callers restate a problem under another field through ``RevprofError.problem``, not by
    rewriting message text."""
    with pytest.raises(RevprofError) as raised:
        parse({"sampler": {"name": "grid"},
               "space": {"levels": [2, 3], "width": 8, "encoder_depth": {"low": 1, "high": 3},
                         "per_level_depth": True}})
    assert raised.value.field == "sampler.name"
    assert str(raised.value) == ("t.toml: sampler.name needs a fixed number of levels when "
                                 "per_level_depth or per_level_reversible is set")
    from revprof.errors import look_up

    with pytest.raises(RevprofError) as raised:
        look_up("precision", "fp23", ["fp32", "bf16"])
    assert (raised.value.field, raised.value.problem) == (
        "precision", "must be one of fp32, bf16; got 'fp23' (did you mean 'fp32'?)")


def _toml_value(stored: dict) -> object:
    """A dimension's stored form (``Dim.to_dict``) written back as a ``[space]`` value."""
    if "fixed" in stored:
        return stored["fixed"]
    if "choices" in stored:
        return stored["choices"]
    return {k: stored[k] for k in ("low", "high", "step", "log")}


def test_each_dimension_kind_round_trips_through_parsing() -> None:
    """The three kinds of dimension keep the stored form older stores were written with (a
    resumed study compares it), and that form parses back to the same dimension."""
    from revprof.sweep.studyfile.dims import Choice, Fixed, IntRange

    def parse_space(space: dict) -> object:
        return parse_study({"study": {"name": "t"}, "fixed": {"steps": 2}, "space": space}, "t.toml")

    study = parse_space({"levels": 3, "width": [4, 8], "depth": {"low": 1, "high": 5, "step": 2},
                         "encoder_depth": {"low": 1, "high": 4, "log": True},
                         "patch": [16, "16,32,16"]})
    assert study.space == {
        "levels": Fixed(3), "width": Choice((4, 8)), "depth": IntRange(1, 5, 2, False),
        "encoder_depth": IntRange(1, 4, 1, True), "patch": Choice(("16,16,16", "16,32,16"))}
    stored = {k: d.to_dict() for k, d in study.space.items()}
    assert stored == {
        "levels": {"fixed": 3}, "width": {"choices": [4, 8]},
        "depth": {"low": 1, "high": 5, "step": 2, "log": False},
        "encoder_depth": {"low": 1, "high": 4, "step": 1, "log": True},
        "patch": {"choices": ["16,16,16", "16,32,16"]}}
    assert study.to_dict()["space"] == stored
    again = parse_space({k: _toml_value(v) for k, v in stored.items()})
    assert again.space == study.space
    assert [d.searched for d in study.space.values()] == [False, True, True, True, True]
    assert [d.count for d in study.space.values()] == [1, 2, 3, 4, 2]
    assert study.space["depth"].values() == [1, 3, 5]
    assert study.space["depth"].contains(3) and not study.space["depth"].contains(2)
    assert not study.space["depth"].contains(True) and not Choice((4, 8)).contains(6)
    assert Choice((4,)).searched is False and Choice((4,)).suggest(None, "width") == 4


def test_each_dimension_kind_is_the_optuna_distribution_it_records() -> None:
    """Suggesting a dimension in a real Optuna trial records exactly ``Dim.distribution()``,
    whose values are the dimension's values; a fixed value is not asked at all."""
    import optuna
    from optuna.distributions import CategoricalDistribution, IntDistribution

    from revprof.sweep.studyfile.dims import PER_LEVEL_FLAG, Fixed

    study_file = parse({"space": {"levels": 3, "width": [4, 8], "encoder_depth": {"low": 1, "high": 5, "step": 2},
                                  "depth": {"low": 1, "high": 4, "log": True}}})
    dims = {**study_file.space, "reversible_0": PER_LEVEL_FLAG}
    expected = {"width": CategoricalDistribution([4, 8]),
                "encoder_depth": IntDistribution(1, 5, step=2),
                "depth": IntDistribution(1, 4, log=True),
                "reversible_0": CategoricalDistribution([True, False])}
    assert {k: d.distribution() for k, d in dims.items() if d.searched} == expected
    assert dims["levels"].distribution() == CategoricalDistribution([3])
    assert Fixed("all").distribution().choices == ("all",)
    for dist, dim in zip(expected.values(), (dims[k] for k in expected), strict=True):
        if isinstance(dist, IntDistribution):
            assert list(range(dist.low, dist.high + 1, dist.step)) == dim.values()
        else:
            assert list(dist.choices) == dim.values()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = []

    def objective(trial: optuna.Trial) -> float:
        values = {k: d.suggest(trial, k) for k, d in dims.items()}
        seen.append(values)
        assert all(dims[k].contains(v) for k, v in values.items())
        return 0.0

    study.optimize(objective, n_trials=6)
    for trial, values in zip(study.trials, seen, strict=True):
        assert trial.distributions == expected
        assert trial.params == {k: v for k, v in values.items() if k != "levels"}
        assert values["levels"] == 3
