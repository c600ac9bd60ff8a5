"""The training recipe (issue 22): one value for the step users really run.

Every preset and every optimizer is measured on the CPU and over fake tensors (equal to the
byte) and counted independently by PyTorch's ``MemTracker``; each optimizer's state has the size
PyTorch's optimizer keeps; fp16 with the scaler learns where plain fp16 underflows; the recipe
travels whole through spec files, checkpoints, study files, stores and the command line, and the
forms written before it existed still load as the paper's recipe.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import optuna
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from revprof import RevprofError
from revprof.cli.app import app
from revprof.memory import measure_memory
from revprof.memory.tracker import rounded
from revprof.nn import build_model
from revprof.recipe import (
    FIELDS, MONAI_BRATS, NNUNET, OPTIMIZER_DEFAULTS, OPTIMIZERS, PAPER, PRESETS, Recipe,
    read_recipe_file, recipe_from_table, resolve_recipe,
)
from revprof.spec import spec_from_options
from revprof.step import Batch, TrainingStep
from memtracker import memtracker_peak

TINY = spec_from_options(widths="4,8", groups=2)
PATCH = (8, 8, 8)
OLD_STORE = Path(__file__).parent / "data" / "old-store"
STATE_COPIES = {"sgd": 1, "adam": 2, "adamw": 2, "rmsprop": 1, "adagrad": 1}
"""Parameter-sized state tensors each optimizer keeps: SGD's momentum buffer (with momentum),
Adam's and AdamW's two moments, RMSprop's square average, Adagrad's sum."""


def with_optimizer(recipe: Recipe, optimizer: str) -> Recipe:
    """``recipe`` with another optimizer: the settings the new one does not take are unset, and
    SGD gets a momentum (so it keeps state)."""
    takes = OPTIMIZER_DEFAULTS[optimizer]
    changes: dict[str, object] = {"optimizer": optimizer}
    for name in ("momentum", "nesterov", "weight_decay", "betas", "eps"):
        if name not in takes:
            changes[name] = None
    if optimizer == "sgd":
        changes["momentum"] = 0.9
    if optimizer == "rmsprop":
        changes["momentum"] = None
    return recipe.with_overrides(changes)


def parameter_bytes(spec=TINY) -> int:
    with torch.device("meta"):
        return sum(rounded(p.numel() * p.element_size()) for p in build_model(spec).parameters())


CASES = [pytest.param(name, optimizer, id=f"{name}-{optimizer}")
         for name in PRESETS for optimizer in OPTIMIZERS]


# ---- the step, measured -------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "optimizer"), CASES)
def test_every_preset_and_optimizer_simulate_equals_cpu_and_memtracker(name: str, optimizer: str,
                                                                       monkeypatch) -> None:
    recipe = with_optimizer(PRESETS[name], optimizer)
    simulated = measure_memory(TINY, PATCH, recipe, backend="simulate")
    counted = measure_memory(TINY, PATCH, recipe, backend="cpu")
    assert simulated.peak_bytes == counted.peak_bytes
    assert simulated.breakdown == counted.breakdown
    if counted.steps == simulated.steps:  # (on real tensors a GradScaler may skip a first step)
        assert simulated.timeline.bytes == counted.timeline.bytes
    assert simulated.recipe == recipe and simulated.batch == recipe.batch
    theirs, counters = memtracker_peak(TINY, PATCH, recipe, monkeypatch)
    # MemTracker also counts the optimizer's host step counters, which exist from the first
    # optimizer step on (Adagrad: from its constructor)
    present = (simulated.peak_step >= 1 or simulated.peak_phase == "optimizer"
               or optimizer == "adagrad")
    assert theirs == simulated.peak_bytes + (counters if present else 0), (
        theirs, simulated.peak_bytes, counters, simulated.peak_phase, simulated.peak_step)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_each_optimizer_state_has_the_size_pytorch_keeps(optimizer: str) -> None:
    recipe = with_optimizer(PAPER, optimizer)
    report = measure_memory(TINY, (32, 32, 32), recipe, backend="simulate", steps=3)
    assert report.peak_step >= 1 or optimizer == "adagrad"  # the state exists at the peak
    assert report.breakdown["optimizer_state"] == STATE_COPIES[optimizer] * parameter_bytes()
    assert recipe.state_copies() == STATE_COPIES[optimizer]
    plain_sgd = measure_memory(TINY, (32, 32, 32), PAPER.with_overrides(
        {"optimizer": "sgd", "weight_decay": None}), backend="simulate", steps=3)
    assert plain_sgd.breakdown["optimizer_state"] == 0  # SGD without momentum keeps nothing


def test_fused_step_counters_live_on_the_device() -> None:
    foreach = measure_memory(TINY, PATCH, PAPER, backend="simulate")
    fused = measure_memory(TINY, PATCH, PAPER.with_overrides({"implementation": "fused"}),
                           backend="simulate")
    tensors = len(list(build_model(TINY).parameters()))
    # fused Adam keeps its per-parameter step counters on the device (512 B each)
    assert fused.breakdown["optimizer_state"] == foreach.breakdown["optimizer_state"] + 512 * tensors


def test_gradient_accumulation_keeps_the_gradients_between_micro_batches() -> None:
    once = measure_memory(TINY, PATCH, PAPER, backend="simulate")
    twice = measure_memory(TINY, PATCH, PAPER.with_overrides({"accumulate": 2}), backend="simulate")
    assert twice.peak_bytes > once.peak_bytes  # the second micro-batch runs with gradients alive
    assert twice.breakdown["gradients"] == parameter_bytes() > once.breakdown["gradients"]


def test_zero_grad_without_none_keeps_the_gradients_allocated() -> None:
    freed = measure_memory(TINY, PATCH, PAPER.with_overrides({"zero_grad": "start"}),
                           backend="simulate")
    kept = measure_memory(TINY, PATCH, PAPER.with_overrides({"zero_grad": "start",
                                                             "set_to_none": False}),
                          backend="simulate")
    assert kept.breakdown["gradients"] == parameter_bytes() and freed.breakdown["gradients"] < kept.breakdown["gradients"]


def _scaled_tiny(scaler: bool, precision: str = "fp16") -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """One step of a 1x1x1 convolution whose output is scaled by 1e-4, so its gradients are
    about 1e-9: below float16's smallest number. Returns the model, its weight before and the
    weight's gradient."""
    class Scale(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 1e-4

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv3d(4, 3, 3, padding=1), Scale())
    recipe = PAPER.with_overrides({"precision": precision, "grad_scaler": scaler, "zero_grad": "start",
                                   "optimizer": "sgd", "weight_decay": None, "lr": 1.0})
    runner = TrainingStep(model, recipe, "logits", "cpu")
    generator = torch.Generator().manual_seed(0)
    batch = Batch(torch.randn(1, 4, 16, 16, 16, generator=generator),
                  [(torch.rand(1, 3, 16, 16, 16, generator=generator) < 0.5).float()])
    before = model[0].weight.detach().clone()
    runner(batch)
    return model, before, model[0].weight.grad.detach().clone()


def test_fp16_with_the_scaler_learns_where_plain_fp16_underflows() -> None:
    model, before, _ = _scaled_tiny(scaler=False)
    assert torch.equal(model[0].weight, before)  # every gradient underflowed to 0
    model, before, grad = _scaled_tiny(scaler=True)
    _, _, reference = _scaled_tiny(scaler=False, precision="fp32")
    assert torch.isfinite(model[0].weight).all() and not torch.equal(model[0].weight, before)
    scale = reference.abs().max()  # unscaled, it is the fp32 gradient (to fp16's precision)
    assert 0 < scale < 1e-5 and torch.allclose(grad, reference, rtol=0.0, atol=0.01 * float(scale))
    assert PAPER.with_overrides({"precision": "fp16"}).uses_scaler  # on by default for fp16


# ---- the value ----------------------------------------------------------------------------------
def test_presets_round_trip_and_their_keys_are_stable() -> None:
    for recipe in PRESETS.values():
        assert Recipe.from_dict(json.loads(recipe.to_json())) == recipe
        assert Recipe.from_dict(recipe.to_dict()).key() == recipe.key()
    # the key is part of stored trials (the sweep's train-once key): it must not drift
    assert PAPER.key() == "61800d252941ff88"
    assert PAPER.with_overrides({"name": "mine"}).key() == PAPER.key()
    assert len({r.key() for r in PRESETS.values()}) == 3
    # a field added later counts only once set: old keys stay, a set value is another recipe
    augmented = PAPER.with_overrides({"intensity": 0.1})
    assert augmented.key() != PAPER.key()
    assert Recipe.from_dict(augmented.to_dict()) == augmented
    assert "intensity 0.1" in augmented.run_words() and "intensity" not in PAPER.run_words()
    with pytest.raises(RevprofError, match=r"recipe.intensity must be from 0 to 0.5; got 0.7"):
        PAPER.with_overrides({"intensity": 0.7})
    rotated = PAPER.with_overrides({"spatial": 0.2})
    assert len({rotated.key(), augmented.key(), PAPER.key()}) == 3
    assert Recipe.from_dict(rotated.to_dict()) == rotated
    assert rotated.run_words().endswith(", spatial 0.2") and "spatial" not in PAPER.run_words()
    with pytest.raises(RevprofError, match=r"recipe.spatial must be from 0 to 1; got 1.5"):
        PAPER.with_overrides({"spatial": 1.5})


def test_the_presets_are_their_sources_steps() -> None:
    assert (PAPER.optimizer, PAPER.lr, PAPER.weight_decay, PAPER.loss, PAPER.batch) == (
        "adam", 1e-4, 1e-5, "dice", 1)
    assert (NNUNET.optimizer, NNUNET.lr, NNUNET.momentum, NNUNET.nesterov, NNUNET.weight_decay,
            NNUNET.loss, NNUNET.precision, NNUNET.uses_scaler, NNUNET.clip, NNUNET.batch,
            NNUNET.schedule, NNUNET.foreground, NNUNET.zero_grad) == (
        "sgd", 1e-2, 0.99, True, 3e-5, "dice_ce", "fp16", True, 12.0, 2, "poly", 0.33, "start")
    assert (MONAI_BRATS.optimizer, MONAI_BRATS.lr, MONAI_BRATS.weight_decay, MONAI_BRATS.precision,
            MONAI_BRATS.uses_scaler, MONAI_BRATS.set_to_none, MONAI_BRATS.schedule) == (
        "adam", 1e-4, 1e-5, "fp16", True, False, "cosine")
    assert NNUNET.optimizer_kwargs() == {"lr": 1e-2, "momentum": 0.99, "nesterov": True,
                                         "weight_decay": 3e-5, "foreach": True}


@pytest.mark.parametrize(("changes", "message"), [
    pytest.param({"optimizer": "adamm"}, "recipe.optimizer must be one of sgd, adam, adamw, rmsprop, "
                 "adagrad; got 'adamm' (did you mean 'adam'?)", id="optimizer"),
    pytest.param({"lr": -1}, "recipe.lr must be above 0 to 10; got -1", id="lr"),
    pytest.param({"lr": float("nan")}, "recipe.lr must be a finite number", id="lr-nan"),
    pytest.param({"momentum": 0.9}, "recipe.momentum is not a setting of adam", id="momentum-adam"),
    pytest.param({"optimizer": "sgd", "weight_decay": None, "nesterov": True},
                 "recipe.nesterov needs a momentum above 0", id="nesterov"),
    pytest.param({"betas": [0.9]}, "recipe.betas must be two numbers", id="betas"),
    pytest.param({"implementation": "fused", "optimizer": "rmsprop", "weight_decay": None},
                 "recipe.implementation 'fused' has no RMSprop", id="fused-rmsprop"),
    pytest.param({"targets": "labels"}, "recipe.loss must be 'ce' for targets 'labels'", id="labels"),
    pytest.param({"accumulate": 0}, "recipe.accumulate must be from 1 to 1024; got 0", id="accumulate"),
    pytest.param({"batch": 99999999999999999999}, "recipe.batch must be from 1 to 1024", id="batch"),
    pytest.param({"steps": "10"}, "recipe.steps must be a whole number", id="steps"),
    pytest.param({"clip": 0}, "recipe.clip must be above 0", id="clip"),
    pytest.param({"foreground": 1.5}, "recipe.foreground must be from 0 to 1", id="foreground"),
    pytest.param({"grad_scaler": "yes"}, "recipe.grad_scaler must be true or false", id="scaler"),
    pytest.param({"accumulate": 2, "zero_grad": "after_loss"}, "recipe.zero_grad cannot be "
                 "'after_loss' with accumulate > 1", id="zero-grad"),
    pytest.param({"lrr": 1}, "'lrr' is not a recipe field (did you mean 'lr'?)", id="unknown"),
])
def test_a_bad_field_is_refused_naming_it(changes: dict, message: str) -> None:
    with pytest.raises(RevprofError) as error:
        PAPER.with_overrides(changes)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_recipe_files_and_tables_take_a_preset_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"preset": "nnunet", "batch": 4, "optimizer": "adamw",
                                "momentum": None, "nesterov": None}))
    mine = read_recipe_file(path)
    assert mine.batch == 4 and mine.optimizer == "adamw" and mine.clip == 12.0 and mine.name == "nnunet+"
    assert resolve_recipe(str(path)) == mine
    assert resolve_recipe("monai-brats", {"lr": 3e-4}).lr == 3e-4
    assert resolve_recipe("paper", {"weight_decay": None}).hyperparameters()["weight_decay"] == 0.0
    with pytest.raises(RevprofError, match="preset must be one of paper, nnunet, monai-brats; got "
                                           "'nnunt' \\(did you mean 'nnunet'\\?\\)"):
        recipe_from_table({"preset": "nnunt"})
    path.write_text("{")
    with pytest.raises(RevprofError, match="not valid JSON"):
        read_recipe_file(path)
    assert set(FIELDS) == set(PAPER.to_dict())


# ---- the value travels --------------------------------------------------------------------------
runner = CliRunner()
NET = ["--widths", "4,8", "--groups", "2", "--patch", "8"]


def test_measure_takes_the_recipe_and_shows_it() -> None:
    result = runner.invoke(app, ["measure", *NET, "--backend", "simulate", "--recipe", "nnunet",
                                 "--optimizer", "adam", "--momentum", "0", "--json"])
    assert result.exit_code == 1 and "recipe.momentum is not a setting of adam" in result.output
    result = runner.invoke(app, ["measure", *NET, "--backend", "simulate", "--recipe", "nnunet",
                                 "--batch", "1", "--no-grad-scaler", "--clip", "5", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    wanted = NNUNET.with_overrides({"batch": 1, "grad_scaler": False, "clip": 5.0})
    assert data["recipe"] == wanted.to_dict() and data["batch"] == 1 and data["precision"] == "fp16"
    assert data["peak_bytes"] == measure_memory(TINY, PATCH, wanted, backend="simulate").peak_bytes
    text = runner.invoke(app, ["measure", *NET, "--backend", "simulate", "--recipe", "monai-brats"])
    assert text.exit_code == 0, text.output
    assert "monai-brats: adam lr 0.0001 wd 1e-05 (foreach) · dice on regions · fp16 + GradScaler" in text.output


@pytest.mark.parametrize(("args", "message"), [
    pytest.param(["--recipe", "nnunt"], "error: recipe must be one of paper, nnunet, monai-brats; "
                 "got 'nnunt' (did you mean 'nnunet'?)", id="preset"),
    pytest.param(["--lr", "-1"], "error: recipe override: recipe.lr must be above 0 to 10; got -1.0",
                 id="lr"),
    pytest.param(["--batch", "99999999999999999999"], "error: recipe override: recipe.batch must be "
                 "from 1 to 1024; got 99999999999999999999", id="batch"),
    pytest.param(["--recipe", "missing.json"], "error: recipe file missing.json: no such file", id="file"),
])
def test_a_bad_recipe_option_is_one_line(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["measure", *NET, "--backend", "simulate", *args])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [message] or result.stderr.startswith(message)


def test_set_takes_any_field_and_null_unsets_one() -> None:
    result = runner.invoke(app, ["measure", *NET, "--backend", "simulate", "--json",
                                 "--set", "weight_decay=null", "--set", "eps=1e-6"])
    assert result.exit_code == 0, result.output
    recipe = json.loads(result.stdout)["recipe"]
    assert recipe["weight_decay"] is None and recipe["eps"] == 1e-6  # PyTorch's 0 weight decay
    bad = runner.invoke(app, ["measure", *NET, "--backend", "simulate", "--set", "batch"])
    assert bad.exit_code == 1 and bad.stderr.startswith("error: --set 'batch' must be FIELD=VALUE")


def test_a_revprof_network_refuses_softmax_targets_in_one_line() -> None:
    result = runner.invoke(app, ["measure", *NET, "--backend", "simulate", "--targets", "classes"])
    assert result.exit_code == 1
    assert "ends in a sigmoid over its 3 region channels, so it trains against targets 'regions'" in result.stderr


def test_plan_takes_the_recipe_and_its_batch() -> None:
    paper = runner.invoke(app, ["plan", "--widths", "4,8", "--groups", "2", "--budget", "8MiB",
                                "--criterion", "allocated", "--max-patch", "64", "--json"])
    nnunet = runner.invoke(app, ["plan", "--widths", "4,8", "--groups", "2", "--budget", "8MiB",
                                 "--criterion", "allocated", "--max-patch", "64", "--json",
                                 "--recipe", "nnunet"])
    assert paper.exit_code == nnunet.exit_code == 0, (paper.output, nnunet.output)
    small, large = json.loads(nnunet.stdout), json.loads(paper.stdout)
    assert small["recipe"]["name"] == "nnunet" and large["recipe"]["name"] == "paper"
    # at batch 2 (and with its scaler, clipping and cross-entropy) the nnU-Net step needs more
    # per voxel: a smaller largest patch
    assert small["candidates"][0]["voxels"] < large["candidates"][0]["voxels"]


def test_a_study_file_recipe_table(tmp_path: Path) -> None:
    from revprof.sweep.studyfile import parse_study

    base = {"study": {"name": "s"}, "space": {"levels": 2, "width": 4}}
    study = parse_study({**base, "recipe": {"preset": "nnunet", "batch": 1}})
    assert study.recipe == NNUNET.with_overrides({"batch": 1})
    assert study.fixed_dict()["batch"] == 1 and study.fixed_dict()["lr"] == 0.01
    assert study.identity()["recipe"] == study.recipe.to_dict()
    legacy = parse_study({**base, "fixed": {"lr": 3e-3, "schedule": "poly", "steps": 80}})
    assert (legacy.recipe.lr, legacy.recipe.schedule, legacy.recipe.steps) == (3e-3, "poly", 80)
    with pytest.raises(RevprofError, match=r"<study>: fixed.lr is also set in \[recipe\]"):
        parse_study({**base, "fixed": {"lr": 1e-3}, "recipe": {"lr": 1e-2}})
    with pytest.raises(RevprofError, match=r"<study>: recipe.optimizer must be one of"):
        parse_study({**base, "recipe": {"optimizer": "lion"}})
    with pytest.raises(RevprofError, match=r"<study>: recipe.lrr is not a recipe field"):
        parse_study({**base, "recipe": {"lrr": 1}})


def test_a_version_1_spec_file_loads_as_the_paper_recipe(tmp_path: Path) -> None:
    from revprof.train.specfile import read_spec_file

    path = tmp_path / "old.json"
    path.write_text(json.dumps({
        "revprof_spec_file": 1, "header": {"study": "quick", "trial": 3}, "spec": TINY.to_dict(),
        "patch": [8, 8, 8], "batch": 2, "precision": "bf16",
        "train": {"steps": 40, "val_cases": 1, "seed": 0, "device": "cpu", "data": None,
                  "convention": None, "crop": None, "synthetic_cases": 6, "synthetic_shape": [48, 48, 48]}}))
    loaded = read_spec_file(path)
    assert loaded.settings.recipe == PAPER.with_overrides({"batch": 2, "precision": "bf16", "steps": 40})
    assert loaded.settings.synthetic_shape == (48, 48, 48) and loaded.patch == (8, 8, 8)


@pytest.mark.parametrize(("train", "message"), [
    pytest.param({"data": 3}, "train: data must be a non-empty text; got 3", id="data-number"),
    pytest.param({"device": ["cpu"]}, "train: device must be a non-empty text; got ['cpu']", id="device-list"),
    pytest.param({"val_cases": "2"}, "train: val_cases must be a whole number from 0 to", id="val-cases-text"),
    pytest.param({"recipe": {"batch": 0}}, "recipe.batch must be from 1 to 1024; got 0", id="batch"),
    pytest.param({"nope": 1}, "train: unknown setting 'nope'", id="unknown"),
])
def test_a_spec_file_with_wrong_types_is_one_line(tmp_path: Path, train: dict, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"revprof_spec_file": 2, "spec": TINY.to_dict(),
                                "train": {"patch": [8, 8, 8], **train}}))
    result = runner.invoke(app, ["measure", "--spec", str(path), "--backend", "simulate"])
    assert result.exit_code == 1 and message in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_checkpoint_keeps_its_recipe_and_an_old_one_is_the_papers(tmp_path: Path) -> None:
    from revprof.train.predict import load_checkpoint
    from revprof.train.run import save_checkpoint

    model = build_model(TINY)
    recipe = MONAI_BRATS.with_overrides({"batch": 2})
    save_checkpoint(model, TINY, tmp_path / "new.pt", patch=PATCH, recipe=recipe)
    assert load_checkpoint(tmp_path / "new.pt").recipe == recipe
    assert load_checkpoint(tmp_path / "new.pt").precision == "fp16"
    torch.save({"spec": TINY.to_dict(), "state_dict": model.state_dict(), "precision": "bf16"},
               tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt").recipe == PAPER.with_overrides({"precision": "bf16"})


def test_an_old_store_exports_its_trials_with_the_paper_recipe(tmp_path: Path) -> None:
    journal = tmp_path / "studies.journal"
    shutil.copy(OLD_STORE / "studies.journal", journal)
    result = runner.invoke(app, ["export", "tiny-memory", "--trial", "0", "--storage", str(journal),
                                 "--out", str(tmp_path / "specs")])
    assert result.exit_code == 0, result.output
    from revprof.train.specfile import read_spec_file

    (path,) = (tmp_path / "specs").iterdir()
    assert read_spec_file(path).settings.recipe == PAPER.with_overrides({"steps": 3})
    study = optuna.load_study(study_name="tiny-memory",
                              storage=__import__("revprof.sweep.storage", fromlist=["x"]).open_storage(str(journal)))
    assert "recipe" not in study.user_attrs.get("study", {})


@pytest.mark.slow
def test_the_paper_recipe_figure_is_unchanged_to_the_byte() -> None:
    report = measure_memory(spec_from_options(), 128, backend="simulate")
    assert report.peak_bytes == 2_798_887_936
    assert report.recipe == PAPER


@pytest.mark.parametrize("option", ["--spec", "--recipe"])
@pytest.mark.parametrize("kind", ["fifo", "deep", "folder"])
def test_a_settings_file_that_cannot_be_read_is_one_line_and_never_hangs(tmp_path: Path, option: str,
                                                                         kind: str) -> None:
    import os

    path = tmp_path / "settings.json"
    if kind == "fifo":
        os.mkfifo(path)  # opening it would block until a writer comes
    elif kind == "deep":
        path.write_text("[" * 100_000 + "]" * 100_000)
    else:
        path.mkdir()
    result = runner.invoke(app, ["measure", option, str(path), "--backend", "simulate",
                                 *([] if option == "--spec" else NET)])
    assert result.exit_code == 1
    wanted = {"fifo": "not a regular file", "deep": "not valid JSON (nested too deep)",
              "folder": "a folder; give a file"}[kind]
    assert wanted in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.output


@pytest.mark.parametrize("loss", ["ce", "dice_ce"])
def test_cross_entropy_of_saturated_probabilities_has_a_finite_gradient(loss: str) -> None:
    # a sigmoid saturated to exactly 0 and 1, right and wrong: the gradient must stay finite
    # (clamping the log's value gave 0 * inf = NaN; seen on real BraTS cases at step 11)
    from revprof.losses import single_loss

    logits = torch.tensor([-200.0, -200.0, 200.0, 200.0, -30.0, 30.0, 0.3, -0.2]).reshape(1, 1, 2, 2, 2)
    logits.requires_grad_(True)
    target = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0]).reshape(1, 1, 2, 2, 2)
    value = single_loss(PAPER.with_overrides({"loss": loss}), "probabilities")(torch.sigmoid(logits), target)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()
    # unsaturated voxels keep binary_cross_entropy's value
    p = torch.sigmoid(torch.tensor([0.3, -0.2]))
    ce = single_loss(PAPER.with_overrides({"loss": "ce"}), "probabilities")(
        p.reshape(1, 1, 2, 1, 1), torch.tensor([1.0, 0.0]).reshape(1, 1, 2, 1, 1))
    assert ce.item() == pytest.approx(torch.nn.functional.binary_cross_entropy(p, torch.tensor([1.0, 0.0])).item(), rel=1e-6)
