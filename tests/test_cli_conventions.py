"""The command-line conventions users expect: --version, completion, --json with a "kind",
--quiet, REVPROF_STORAGE, help texts that read as sentences, a bounded plan."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from revprof import __version__
from revprof.cli.app import app

OLD_STORE = Path(__file__).parent / "data" / "old-store"
TINY_NET = ["--levels", "2", "--widths", "4,8"]


def invoke(*args: str, env: dict[str, str] | None = None) -> object:
    result = CliRunner().invoke(app, list(args), env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def _commands() -> list[tuple[str, object]]:
    root = typer.main.get_command(app)
    found = []

    def walk(command: object, path: str) -> None:  # Typer's own click commands
        found.append((path, command))
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                if not sub.hidden:
                    walk(sub, f"{path} {name}".strip())

    walk(root, "")
    return found


def test_version_and_completion() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"revprof {__version__}"
    # Typer detects the shell from the process's ancestors (shellingham), so the check runs
    # under bash as a user's shell would; a test process with no shell above it (a job
    # re-parented to init) made an in-process `--show-completion bash` exit 1.
    # ("; exit $?" keeps bash from exec-ing the command in its own place)
    script = subprocess.run(["bash", "-c", f"'{sys.executable}' -m revprof --show-completion; exit $?"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert script.returncode == 0, (script.returncode, script.stdout, script.stderr)
    assert "complete -o" in script.stdout and "_REVPROF_COMPLETE" in script.stdout, script.stdout


def test_every_option_has_help_and_help_reads_as_sentences() -> None:
    missing, wrapped = [], []
    for path, command in _commands():
        for param in command.params:
            if param.param_type_name == "option" and not param.hidden and not param.help:
                missing.append(f"{path or 'revprof'} {param.opts[0]}")
        for paragraph in re.split(r"\n\s*\n", command.help or ""):
            if "\n" in paragraph.strip():
                wrapped.append(f"{path or 'revprof'}: {paragraph[:60]!r}")
    assert not missing, f"options without help: {missing}"
    assert not wrapped, f"help paragraphs with hard line breaks: {wrapped}"
    assert "state dict" in invoke("measure", "--help", env={"COLUMNS": "200"}).output


@pytest.mark.slow
def test_json_output_says_its_kind(tmp_path: Path) -> None:
    memory = json.loads(invoke("measure", *TINY_NET, "--patch", "16", "--backend", "simulate",
                               "--json").output)
    assert memory["kind"] == "memory" and memory["peak_bytes"] > 0
    assert json.loads(invoke("model", *TINY_NET, "--json").output)["kind"] == "model"
    plan = json.loads(invoke("plan", *TINY_NET, "--budget", "1GiB", "--patch", "16", "--search",
                             "depth", "--max-depth", "2", "--json").output)
    assert plan["kind"] == "plan" and plan["complete"] is True and plan["candidates"]

    data = tmp_path / "data"
    assert invoke("data", "synth", str(data), "--cases", "1", "--shape", "16,16,16").exit_code == 0
    checked = invoke("data", "check", str(data), "--json")
    report = json.loads(checked.stdout)
    assert checked.exit_code == 0 and report["kind"] == "data-check" and report["usable"] is True
    assert report["found"] == report["readable"] == 1
    assert report["shapes"] == [{"shape": [16, 16, 16], "cases": 1}]


def test_sweep_json_quiet_and_storage_from_the_environment(tmp_path: Path) -> None:
    study_file = tmp_path / "tiny.toml"
    journal = tmp_path / "studies.journal"
    shutil.copy(OLD_STORE / "tiny.toml", study_file)
    shutil.copy(OLD_STORE / "studies.journal", journal)
    env = {"REVPROF_STORAGE": str(journal)}
    result = invoke("sweep", str(study_file), "--memory-only", "--json", env=env)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # stdout is the one JSON object
    assert summary["kind"] == "sweep" and summary["study"] == "tiny-memory"
    assert summary["store"] == str(journal) and summary["counts"]["complete"] == 3
    assert summary["pareto_front"] == [0] and summary["objectives"] == ["params", "peak_bytes"]

    quiet = invoke("--quiet", "sweep", str(study_file), "--memory-only", env=env)
    assert quiet.exit_code == 0 and quiet.stdout == ""
    loud = invoke("sweep", str(study_file), "--memory-only", env=env)
    assert "Pareto front of tiny-memory" in loud.stdout


def test_a_storage_url_from_the_environment_never_shows_its_password(tmp_path: Path) -> None:
    study_file = tmp_path / "tiny.toml"
    shutil.copy(OLD_STORE / "tiny.toml", study_file)
    url = "postgresql://revprof:s3cret-pw@127.0.0.1:1/revprof"
    for command in (["sweep", str(study_file), "--memory-only"], ["export", "tiny", "--front"],
                    ["report", "--study", "tiny"]):
        result = invoke(*command, env={"REVPROF_STORAGE": url})
        assert result.exit_code == 1, command
        assert result.output.startswith("error: cannot open the study store "
                                        "postgresql://revprof:***@127.0.0.1:1/revprof"), command
        assert "s3cret-pw" not in result.output, command


def test_plan_stops_at_max_seconds_with_the_best_so_far() -> None:
    result = invoke("plan", *TINY_NET, "--budget", "1GiB", "--patch", "16", "--json",
                    "--max-seconds", "0.001")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["kind"] == "plan" and plan["complete"] is False
    assert plan["evaluated"] == 1  # stopped after the first prediction, which fits in 1 GiB
    assert plan["best_so_far"]["patch"] == [16, 16, 16]
    assert plan["best_so_far"]["device_need_bytes"] <= plan["budget_bytes"]
    assert "stopped after" in result.stderr and "--max-seconds 0.001" in result.stderr


@pytest.mark.parametrize(("args", "expect"), [
    (["measure", "--levels", "x"], "Invalid value for '--levels'"),
    (["measre"], "No such command 'measre'. Did you mean 'measure'?"),
    (["measure", "--bogus"], "No such option: --bogus"),
    (["evaluate"], "Missing option '--pred'"),
])
def test_usage_errors_are_one_line(args: list[str], expect: str) -> None:
    """The option parser's errors read like revprof's own: one ``error:`` line, exit 2."""
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert expect in result.stderr and "--help)" in result.stderr


def test_a_group_without_a_command_shows_its_help() -> None:
    result = CliRunner().invoke(app, ["data"])
    assert result.exit_code == 2
    assert "synth" in result.output and "error:" not in result.output


def test_an_error_naming_a_control_character_stays_one_line(tmp_path: Path) -> None:
    """A value holding a character that splits lines (here the record separator) is shown
    escaped, so the error is still one line."""
    result = CliRunner().invoke(app, ["report", "--study", "x", "--storage",
                                      str(tmp_path / "x\x1e.journal")])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [result.stderr.rstrip("\n")]
    assert result.stderr.startswith("error: ") and "x\\x1e.journal" in result.stderr


# ---- typed choices: listed in --help, a wrong one is the library's one-line message -----------
def _choices() -> list[object]:
    from revprof.evaluation.evaluate import HD95_UNITS
    from revprof.evaluation.lesions import CHALLENGES, LESION_STYLES
    from revprof.memory import BACKENDS
    from revprof.memory.device import DEVICE_CLASSES
    from revprof.memory.planner import CRITERIA
    from revprof.recipe import LOSS_NAMES, OPTIMIZERS, TARGETS, ZERO_GRADS
    from revprof.spec import ARCHS, PRECISIONS

    return [
        pytest.param("measure", "--arch", ARCHS, id="arch"),
        pytest.param("measure", "--precision", PRECISIONS, id="precision"),
        pytest.param("measure", "--backend", BACKENDS, id="backend"),
        pytest.param("measure", "--loss", LOSS_NAMES, id="loss"),
        pytest.param("measure", "--optimizer", OPTIMIZERS, id="optimizer"),
        pytest.param("plan", "--targets", TARGETS, id="targets"),
        pytest.param("plan", "--zero-grad", ZERO_GRADS, id="zero-grad"),
        pytest.param("plan", "--criterion", CRITERIA, id="criterion"),
        pytest.param("plan", "--device-class", DEVICE_CLASSES, id="device-class"),
        pytest.param("plan", "--search", ("depth", "width", "both"), id="search"),
        pytest.param("evaluate", "--hd95-units", HD95_UNITS, id="hd95-units"),
        pytest.param("evaluate", "--lesion-rules", LESION_STYLES, id="lesion-rules"),
        pytest.param("evaluate", "--challenge", tuple(CHALLENGES), id="challenge"),
    ]


@pytest.mark.parametrize(("command", "option", "choices"), _choices())
def test_help_lists_the_choices_of_a_choice_option(command: str, option: str,
                                                    choices: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines()  # the option's own row
            if re.match(rf"^\W*{re.escape(option)}\s", line)]
    assert rows and f"<{'|'.join(choices)}>" in rows[0], rows


@pytest.mark.parametrize(("args", "line", "code"), [
    pytest.param(["measure", "--precision", "fp64"], "error: precision must be one of fp32, bf16, "
                 "fp16; got 'fp64' (did you mean 'fp16'?)", 1, id="precision"),
    pytest.param(["measure", "--arch", "revnet"], "error: arch must be one of revunet, nonewnet; "
                 "got 'revnet' (did you mean 'revunet'?)", 1, id="arch"),
    pytest.param(["measure", "--backend", "simulat"], "error: backend must be one of auto, cuda, "
                 "cpu, simulate; got 'simulat' (did you mean 'simulate'?)", 1, id="backend"),
    pytest.param(["measure", "--model", "monai:unet", "--loss", "dic"], "error: loss must be one of "
                 "dice, dice_ce, ce; got 'dic' (did you mean 'dice'?)", 1, id="loss"),
    pytest.param(["measure", "--optimizer", "adamm"], "error: optimizer must be one of "
                 "sgd, adam, adamw, rmsprop, adagrad; got 'adamm' (did you mean 'adam'?)", 1,
                 id="optimizer"),
    pytest.param(["plan", "--budget", "1GiB", "--criterion", "devic"], "error: criterion must be "
                 "one of device, reserved, allocated; got 'devic' (did you mean 'device'?)", 1,
                 id="criterion"),
    pytest.param(["plan", "--budget", "1GiB", "--device-class", "consumr"], "error: device class "
                 "must be one of default, consumer, datacenter, eager-loading; got 'consumr' (did "
                 "you mean 'consumer'?)", 1, id="device-class"),
    pytest.param(["plan", "--budget", "1GiB", "--patch", "16", "--search", "dept"], "error: Invalid "
                 "value for --search: must be one of depth, width, both; got 'dept' (did you mean "
                 "'depth'?) (see revprof plan --help)", 2, id="search"),
    pytest.param(["evaluate", "--pred", ".", "--ref", ".", "--hd95-units", "mn"], "error: "
                 "--hd95-units must be one of mm, voxel; got 'mn' (did you mean 'mm'?)", 1,
                 id="hd95-units"),
    pytest.param(["evaluate", "--pred", ".", "--ref", ".", "--lesion-rules", "oficial"], "error: "
                 "lesion rules must be one of official, brats2023; got 'oficial' (did you mean "
                 "'official'?)", 1, id="lesion-rules"),
    pytest.param(["evaluate", "--pred", ".", "--ref", ".", "--challenge", "glx"], "error: challenge "
                 "must be one of GLI, SSA, MEN, PED, MET; got 'GLX' (did you mean 'GLI'?)", 1,
                 id="challenge"),
])
def test_a_wrong_choice_is_one_line_naming_it_and_the_choices(args: list[str], line: str,
                                                               code: int) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == code
    assert result.stdout == ""
    assert result.stderr.splitlines() == [line]


def test_a_wrong_choice_stops_before_any_work(tmp_path: Path) -> None:
    """The choice is checked while the options are parsed: a training run with a wrong
    precision writes nothing."""
    results = tmp_path / "runs.csv"
    result = CliRunner().invoke(app, ["measure", *TINY_NET, "--steps", "1", "--results", str(results),
                                      "--precision", "fp8"])
    assert result.exit_code == 1 and result.stderr.startswith("error: precision must be one of")
    assert list(tmp_path.iterdir()) == []


def test_a_choice_is_accepted_in_any_case_only_where_the_library_accepts_it() -> None:
    from revprof.cli._common import choice

    assert choice("challenge", ("GLI", "MET"), normalize=str.upper)("met") == "MET"
    with pytest.raises(Exception, match="precision must be one of fp32, bf16; got 'FP32'"):
        choice("precision", ("fp32", "bf16"))("FP32")


def test_the_choice_types_and_the_tables_keyed_by_them_agree() -> None:
    """Where a choice also keys a table (each optimizer's defaults, each device class's context
    allowance, each challenge's lesion settings), the table has exactly the type's values."""
    from typing import get_args

    from revprof.evaluation.lesions import CHALLENGES, ChallengeName
    from revprof.memory.device import CONTEXT_BYTES, DeviceClass
    from revprof.recipe import OPTIMIZER_DEFAULTS, OptimizerName

    assert tuple(OPTIMIZER_DEFAULTS) == get_args(OptimizerName)
    assert tuple(CONTEXT_BYTES) == get_args(DeviceClass)
    assert tuple(CHALLENGES) == get_args(ChallengeName)
