"""Nothing lost, nothing leaked, no traceback (issue 17).

- Every input the issue lists, table-driven: exit status != 0, one ``error:`` line, no
  traceback, no file written or changed.
- A hypothesis fuzz test over the options of every command and the keys of a study file.
- The results table under concurrent appends, its old rows byte for byte, its mode.
- Journal stores with a garbage line in the middle and at the end, a deleted line, two sweeps.
- Password redaction over every URL form: messages, the sweep header, the report HTML, the
  command lines of worker processes.
- Rich markup in user text is printed as it is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from revprof import bounds
from revprof.cli.app import app
from revprof.redaction import redact_text, redact_url
from revprof.train.results import append_row, check_table
from pg_server import postgres_server  # noqa: F401 - the fixture
from test_sweep_run import TINY

ROOT = Path(__file__).resolve().parents[1]

TINY_STUDY = TINY.format(trials=2, budget="")  # the tiny study of the sweep tests


# ---- helpers ------------------------------------------------------------------------------
def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (to prove nothing was written or changed)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def invoke(args: list[str]) -> tuple[int, str, str, BaseException | None]:
    result = CliRunner().invoke(app, args)
    exception = result.exception if not isinstance(result.exception, SystemExit) else None
    return result.exit_code, result.stdout, result.stderr, exception


def assert_one_line_error(args: list[str], folder: Path, expect: str | None = None) -> str:
    """Run ``revprof ARGS`` in ``folder``: non-zero exit, one error line, no traceback, and no
    file under ``folder`` written or changed. Returns the error text."""
    before = snapshot(folder)
    code, out, err, exception = invoke(args)
    assert exception is None, f"{args}: traceback {exception!r}"
    assert code != 0, f"{args}: exit 0\n{out}{err}"
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], f"{args}: stderr {err!r}"
    text = errors[0]
    assert snapshot(folder) == before, f"{args}: files changed"
    if expect is not None:
        assert expect in text, f"{args}: {text!r}"
    return text


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file.txt").write_text("a file\n")
    (tmp_path / "tiny.toml").write_text(TINY_STUDY)
    return tmp_path


def study_with(key: str, value: str) -> str:
    """The tiny study file with ``[table] key = value`` set (``table.key``)."""
    table, name = key.split(".")
    lines, out, current = TINY_STUDY.splitlines(), [], None
    placed = False
    for line in lines:
        if line.startswith("["):
            if current == table and not placed:
                out.append(f"{name} = {value}")
                placed = True
            current = line.strip("[]")
        if current == table and line.split("=")[0].strip() == name:
            continue
        out.append(line)
    if not placed:
        if current != table:
            out.append(f"[{table}]")
        out.append(f"{name} = {value}")
    return "\n".join(out) + "\n"


# ---- every input the issue lists ----------------------------------------------------------
LISTED = [
    # the 41 tracebacks
    pytest.param(["model", "--growth", "nan"], "growth must be a finite number", id="growth-nan"),
    pytest.param(["model", "--growth", "inf"], "growth must be a finite number", id="growth-inf"),
    pytest.param(["model", "--growth", "1e308"], "growth must be a finite number", id="growth-1e308"),
    pytest.param(["model", "--levels", "64"], "levels must be from 2 to 10", id="levels-64"),
    pytest.param(["model", "--levels", "1000"], "levels must be from 2 to 10", id="levels-1000"),
    pytest.param(["model", "--width", "1000000000"], "width must be a whole number from 1 to 8192",
                 id="width-huge"),
    pytest.param(["measure", "--steps", "1", "--seed", "-1"], "--seed must be from 0", id="seed-neg"),
    pytest.param(["measure", "--steps", "1", "--seed", "100000000000000000000"],
                 "--seed must be from 0 to 4294967295", id="seed-1e20"),
    pytest.param(["measure", "--steps", "1", "--results", "/"], "is a folder", id="results-root"),
    pytest.param(["measure", "--steps", "1", "--results", "."], "is a folder", id="results-dot"),
    pytest.param(["measure", "--steps", "1", "--results", "/tmp"], "is a folder", id="results-dir"),
    pytest.param(["measure", "--steps", "1", "--results", "/proc/runs.csv"], "under /proc",
                 id="results-proc"),
    pytest.param(["measure", "--steps", "1", "--results", "file.txt/runs.csv"], "is a file, not a folder",
                 id="results-under-file"),
    pytest.param(["measure", "--steps", "1", "--save-model", "."], "is a folder", id="model-dot"),
    pytest.param(["measure", "--steps", "1", "--save-model", "/proc/m.pt"], "under /proc",
                 id="model-proc"),
    pytest.param(["measure", "--steps", "1", "--save-predictions", "file.txt"], "is a file",
                 id="predictions-file"),
    pytest.param(["measure", "--steps", "1", "--save-predictions", "/"], "not a place for output",
                 id="predictions-root"),
    pytest.param(["measure", "--steps", "1", "--save-predictions", "/proc/x"], "not a place for output",
                 id="predictions-proc"),
    pytest.param(["measure", "--patch", "100000000"], "at most 1024", id="patch-huge"),
    pytest.param(["report", "--study", "x", "--storage", "/dev/null"], "not a regular file",
                 id="storage-devnull"),
    pytest.param(["sweep", "tiny.toml", "--memory-only", "--storage", "/dev/null"], "not a regular file",
                 id="sweep-storage-devnull"),
    pytest.param(["report", "--study", "x", "--storage", "postgresql://u:pw@[::1/db"],
                 "not a valid URL", id="storage-ipv6"),
    pytest.param(["sweep", "tiny.toml", "--study-name", "x" * 600], "at most 200 characters",
                 id="study-name-600"),
    pytest.param(["sweep", "tiny.toml", "--study-name", "a\x00b"], "control characters",
                 id="study-name-nul"),
    pytest.param(["report", "--study", "x" * 600], "at most 200 characters", id="report-study-600"),
    # the hangs
    pytest.param(["model", "--depth", "100000"], "from 1 to 64 blocks", id="depth-100000"),
    # wrong or unclear
    pytest.param(["model", "--widths", "8,,16"], "empty entry", id="widths-empty-entry"),
    pytest.param(["plan", "--budget", "1B", "--levels", "2", "--width", "8"],
                 "over 1 B (the budget of 1 B", id="budget-1B"),
    pytest.param(["report", "--results", "/tmp"], "is a folder", id="report-results-folder"),
    pytest.param(["sweep", "tiny.toml", "--study-name", ""], "must not be empty", id="study-name-empty"),
    pytest.param(["report", "--study", ""], "must not be empty", id="report-study-empty"),
    pytest.param(["sweep", "tiny.toml", "--trials", "1000000000"], "--trials must be from 1 to",
                 id="trials-huge"),
    pytest.param(["sweep", "tiny.toml", "--workers", "100000"], "--workers must be from 1 to",
                 id="workers-huge"),
    pytest.param(["sweep", "tiny.toml", "--data", "missing"], "is not an existing folder",
                 id="sweep-data-missing"),
]

# Study files that were checked only at trial time, or hung, or overflowed.
LISTED_STUDY = [
    pytest.param("space.width", "{low = 1, high = 1000000000000}", "at most 8192", id="width-range-1e12"),
    pytest.param("space.depth", "{low = 1, high = 1000000000000}", "at most 64", id="depth-range-1e12"),
    pytest.param("data.synthetic_cases", "1000000000", "at most 10000", id="synthetic-cases-1e9"),
    pytest.param("data.convention", '"brats2099"', "convention must be one of", id="convention"),
    pytest.param("data.path", '"no/such/folder"', "is not an existing folder", id="data-path"),
    pytest.param("data.synthetic_shape", "1", "sides must be from 16", id="synthetic-shape"),
    pytest.param("fixed.patch", "1048576", "at most 1024", id="patch-1048576"),
    pytest.param("space.growth", "1e300", "growth must be a finite number", id="growth-1e300"),
    pytest.param("space.growth", "nan", "growth must be a finite number", id="growth-nan"),
    pytest.param("space.levels", "64", "at most 10", id="levels-64"),
    pytest.param("fixed.seed", "1099511627776", "at most 4294967295", id="seed"),
    pytest.param("study.trials", "1000000000", "at most 100000", id="trials"),
    pytest.param("study.name", '"a[/x]b"', None, id="markup-name"),
    pytest.param("study.name", '"' + "x" * 600 + '"', "at most 200 characters", id="name-600"),
]


@pytest.mark.parametrize(("args", "expect"), LISTED)
def test_every_listed_input_is_one_error_line(in_tmp: Path, args: list[str], expect: str | None) -> None:
    if "--steps" in args:  # should a check miss, fail fast on the data instead of training
        args = [*args, "--data", "no-data-here"]
    assert_one_line_error(args, in_tmp, expect)


@pytest.mark.parametrize(("key", "value", "expect"), LISTED_STUDY)
def test_study_file_is_checked_whole_when_it_loads(in_tmp: Path, key: str, value: str,
                                                   expect: str | None) -> None:
    (in_tmp / "bad.toml").write_text(study_with(key, value))
    text = assert_one_line_error(["sweep", "bad.toml", "--memory-only"], in_tmp, expect)
    assert not (in_tmp / ".revprof").exists(), text


def test_report_rejects_garbage_stored_values(in_tmp: Path) -> None:
    spec = json.dumps({"widths": [8, 16], "arch": "revunet"})
    for column, value, expect in [("peak_bytes", "abc", "peak_bytes must be a number"),
                                  ("peak_bytes", "1e400", "peak_bytes must be a finite number"),
                                  ("peak_bytes", "-5", "peak_bytes must be a whole number of at least 0"),
                                  ("batch", "1.5x", "batch must be a number"),
                                  ("seconds_per_step", "inf", "seconds_per_step must be a finite"),
                                  ("patch", "a,b,c", "patch must be D,H,W")]:
        row = {"spec": spec, "peak_bytes": "100", "patch": "16,16,16", column: value}
        with open(in_tmp / "runs.csv", "w") as handle:
            handle.write(",".join(row) + "\n" + ",".join(f'"{v}"' if "," in v or '"' in v else v
                                                      for v in (x.replace('"', '""') for x in row.values())) + "\n")
        text = assert_one_line_error(["report", "--results", "runs.csv", "--out", "r.html"], in_tmp,
                                     expect)
        assert "row 0" in text
        assert not (in_tmp / "r.html").exists()


def test_data_check_calls_an_all_nan_image_unusable(tmp_path: Path) -> None:
    import nibabel as nib
    import numpy as np

    from revprof.data.synth import synthesize

    synthesize(tmp_path / "d", 1, (16, 16, 16), "brats2021", seed=0)
    flair = next((tmp_path / "d").rglob("*_flair.nii.gz"))
    image = nib.load(flair)
    nib.save(nib.Nifti1Image(np.full(image.shape, np.nan, np.float32), image.affine), flair)
    code, out, err, exception = invoke(["data", "check", str(tmp_path / "d")])
    assert exception is None and code == 1
    assert "holds no finite value" in out and "not usable" in out


def test_data_synth_refuses_a_folder_with_cases(tmp_path: Path) -> None:
    real = tmp_path / "real" / "BraTS2021_00001"
    real.mkdir(parents=True)
    (real / "BraTS2021_00001_seg.nii.gz").write_bytes(b"real segmentation")
    text = assert_one_line_error(["data", "synth", str(tmp_path / "real"), "--cases", "2",
                                  "--shape", "16,16,16"], tmp_path, "--force")
    assert "BraTS2021_00001" in text
    code, *_ = invoke(["data", "synth", str(tmp_path / "real"), "--cases", "2", "--shape",
                       "16,16,16", "--force"])
    assert code == 0
    assert (real / "BraTS2021_00001_seg.nii.gz").read_bytes() != b"real segmentation"


# ---- fuzz ---------------------------------------------------------------------------------
_HUGE = st.integers(min_value=2**63, max_value=2**80).map(str)
_NEGATIVE = st.integers(max_value=-1).map(str)
_NONFINITE = st.sampled_from(["nan", "inf", "-inf", "1e308", "-1e308", "1e400"])
_MARKUP = st.sampled_from(["[/x]", "[space]", "[fixed]", "[bold]", "[/]", ":ok:", ":x:"])
_JUNK = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                min_size=1, max_size=12).filter(lambda s: not s.strip().isdigit())
_LISTY = st.sampled_from(["8,,16", ",", "1,2,", ",4", "1,,2,3", "1;2", "x"])


def _hostile(option: str) -> st.SearchStrategy[str]:
    if option in ("--growth",):
        return st.one_of(_NONFINITE, st.floats(max_value=0.999, allow_nan=False).map(repr),
                         st.floats(min_value=16.001, allow_infinity=False).map(repr))
    if option in ("--levels",):
        return st.one_of(st.integers(min_value=11, max_value=10**6).map(str), _NEGATIVE,
                         st.sampled_from(["0", "1"]))
    if option in ("--width", "--groups", "--max-width"):
        return st.one_of(st.integers(min_value=8193, max_value=10**12).map(str), _NEGATIVE,
                         st.just("0"))
    if option in ("--widths", "--depth", "--encoder-depth", "--decoder-depth", "--reversible"):
        return st.one_of(_LISTY, _MARKUP, st.integers(min_value=65, max_value=10**9).map(str))
    if option in ("--patch",):
        return st.one_of(_LISTY, _MARKUP, st.integers(min_value=1025).map(str), st.just("0"))
    if option in ("--budget",):
        return st.one_of(_MARKUP, _NONFINITE, _LISTY, st.sampled_from(["", "GiB", "-1GiB", "1XB"]))
    if option in ("--seed",):
        return st.one_of(_NEGATIVE, st.integers(min_value=2**32, max_value=2**70).map(str))
    if option in ("--model-kwargs",):  # not a JSON object, or one nested too deep
        return st.one_of(_JUNK.map(json.dumps), st.integers(1, 200_000).map(
            lambda n: "[" * n + "]" * n), st.integers(1_000, 200_000).map(
            lambda n: '{"a": ' + "[" * n + "]" * n + "}"))
    if option in ("--in-channels", "--patch-multiple"):  # without --model: any value is refused
        return st.integers(min_value=1, max_value=2**70).map(str)
    return st.one_of(_MARKUP, _JUNK)


# (command, option) pairs whose values above are all invalid, and the other arguments they need.
FUZZED = [
    (["model"], opt) for opt in ("--growth", "--levels", "--width", "--widths", "--depth",
                                 "--encoder-depth", "--decoder-depth", "--reversible", "--arch",
                                 "--groups")
] + [
    (["measure", "--backend", "simulate"], opt) for opt in ("--patch", "--levels", "--width",
                                                            "--precision", "--backend")
] + [
    (["measure", "--steps", "1", "--data", "no-data-here"], opt) for opt in ("--seed", "--device")
] + [
    (["plan"], "--budget"),
    (["report", "--study", "x"], "--storage"),
    (["report", "--results", "missing.csv"], "--budget"),
    (["evaluate", "--ref", "file.txt"], "--pred"),
    (["data", "check"], None),
    (["store", "check"], None),
    (["store", "repair"], None),
    (["model", "--model", "torch.nn:Conv3d"], "--model-kwargs"),
    (["model", "--levels", "2"], "--in-channels"),
    (["measure", "--backend", "simulate", "--patch", "8"], "--patch-multiple"),
    (["sweep", "tiny.toml", "--memory-only"], "--study-name"),
    (["sweep", "tiny.toml", "--memory-only"], "--devices"),
    (["sweep", "missing.toml"], None),
]


@pytest.mark.slow
@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_every_command_gets_one_error_line(in_tmp: Path, data: st.DataObject) -> None:
    command, option = data.draw(st.sampled_from(FUZZED))
    value = data.draw(_hostile(option or "path"))
    if option is None:
        args = [*command, value if command != ["sweep", "missing.toml"] else "--all"]
        if command[0] in ("data", "store"):
            args = [*command, f"missing-{value}"]
    else:
        args = [*command, option, value]
    if option == "--storage":
        args[-1] = f"x/{value}.journal"  # a store that does not exist
    if option == "--study-name" and value.strip() and value.isprintable() and len(value) <= 200:
        value = f"{value}\n"  # printable names are valid; make it hostile
        args[-1] = value
    assert_one_line_error(args, in_tmp)


STUDY_KEYS_HOSTILE = {
    "study.trials": ["0", "-1", "1000000000", "1.5", '"x"'],
    "study.name": ['""', '"a b"', '"a/b"', "1"],
    "study.budget": ['"1XB"', "0", "-5", '"nan GiB"', "12", "12.5", "true", "[12]"],
    "study.objectives": ['["dice"]', '["x", "peak_bytes"]', '"dice"'],
    "data.synthetic_cases": ["1", "1000000000", '"x"'],
    "data.synthetic_shape": ["1", "100000", '"a,b,c"'],
    "data.convention": ['"x"', "1"],
    "data.crop": ["0", '"1,2"'],
    "fixed.patch": ["0", "1048576", '"8,,16"'],
    "fixed.batch": ["0", "100000"],
    "fixed.steps": ["1", "100000000000"],
    "fixed.precision": ['"fp8"'],
    "fixed.val_cases": ["0", "3"],
    "fixed.device": ['"tpu"'],
    "fixed.seed": ["-1", "99999999999999"],
    "space.levels": ["1", "64", "{low = 1, high = 1000000000000}"],
    "space.width": ["0", "{low = 1, high = 1000000000000}", "[8, 1000000000]",
                    "[" * 2000 + "]" * 2000, '"8"', "[true]"],
    "space.depth": ["0", "{low = 1, high = 1000000000000}", "100000"],
    "space.growth": ["nan", "inf", "1e300", "0.5"],
    "space.reversible": ['"[/x]"', '"sometimes"', "5", "1.5", "true", "[1.5]", "{a = 1}",
                         "1979-05-27", '":ok:"'],
    "space.arch": ['"[space]"', "5", "[[1]]", "{a = 1}"],
    "space.patch": ["5", '"x"', "[[1]]", "[{a = 1}]"],
    "space.groups": ["0", "100000"],
    "sampler.name": ['"[fixed]"'],
    "sampler.seed": ["-1", "99999999999999"],
}


@pytest.mark.slow
@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_study_file_keys(in_tmp: Path, data: st.DataObject) -> None:
    key = data.draw(st.sampled_from(sorted(STUDY_KEYS_HOSTILE)))
    value = data.draw(st.sampled_from(STUDY_KEYS_HOSTILE[key]))
    (in_tmp / "bad.toml").write_text(study_with(key, value))
    try:
        assert_one_line_error(["sweep", "bad.toml", "--memory-only"], in_tmp)
    finally:
        (in_tmp / "bad.toml").unlink()


# ---- results table ------------------------------------------------------------------------
OLD_ROWS = b'id,big,seed,note\n007,12345678901234567890,0,"a, b"\n0.10,00042,-0,\n'


def test_append_keeps_old_rows_byte_identical_and_the_mode(tmp_path: Path) -> None:
    table = tmp_path / "runs.csv"
    table.write_bytes(OLD_ROWS)
    table.chmod(0o644)
    append_row({"id": "008", "big": 1, "seed": 0, "note": None}, table)
    append_row({"id": "009", "big": 2, "seed": 0, "new": [1, 2]}, table)  # a new column
    data = table.read_bytes()
    assert data.split(b"\n", 1)[1].startswith(OLD_ROWS.split(b"\n", 1)[1])
    assert data.splitlines()[0] == b"id,big,seed,note,new"
    assert data.splitlines()[3:] == [b"008,1,0,", b'009,2,0,,"[1, 2]"']
    assert oct(table.stat().st_mode & 0o777) == oct(0o644)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.csv"]


def test_stale_temporary_files_are_cleaned_up(tmp_path: Path) -> None:
    table = tmp_path / "runs.csv"
    table.write_bytes(OLD_ROWS)
    (tmp_path / ".runs.csv.abc123.tmp").write_bytes(b"half a table")  # a killed writer's
    append_row({"id": "1"}, table)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.csv"]


def test_a_garbage_row_is_named_before_training(in_tmp: Path) -> None:
    (in_tmp / "runs.csv").write_bytes(OLD_ROWS + b"1,2,3,4,5,6\n")
    assert_one_line_error(["measure", "--steps", "1", "--results", "runs.csv"], in_tmp,
                          "line 4 has 6 fields, the header 4")
    assert not (in_tmp / ".revprof").exists()  # no data prepared, no training


def test_a_hand_edited_table_without_a_final_newline(tmp_path: Path) -> None:
    table = tmp_path / "runs.csv"
    table.write_bytes(OLD_ROWS.rstrip(b"\n"))
    append_row({"id": "x"}, table)
    assert table.read_bytes() == OLD_ROWS + b"x,,,\n"
    assert check_table(table) == table


_APPENDER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from revprof.train.results import append_row
    for i in range(int(sys.argv[2])):
        append_row({"id": "007", "big": 12345678901234567890, "seed": 0, "note": sys.argv[3],
                    "i": i}, Path(sys.argv[1]))
""")


@pytest.mark.slow
def test_concurrent_appends_keep_every_row(tmp_path: Path) -> None:
    table = tmp_path / "runs.csv"
    table.write_bytes(OLD_ROWS)
    table.chmod(0o640)
    processes, per_process = 4, 25
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = [subprocess.Popen([sys.executable, "-c", _APPENDER, str(table), str(per_process),
                                 f"w{k}"], env=env) for k in range(processes)]
    assert [w.wait(timeout=120) for w in workers] == [0] * processes
    lines = table.read_bytes().splitlines()
    assert lines[0] == b"id,big,seed,note,i"
    assert b"\n".join(lines[1:3]) + b"\n" == OLD_ROWS.split(b"\n", 1)[1]
    new = lines[3:]
    assert len(new) == processes * per_process
    expected = {f"007,12345678901234567890,0,w{k},{i}".encode() for k in range(processes)
                for i in range(per_process)}
    assert set(new) == expected
    for k in range(processes):  # each writer's rows in its own order
        mine = [line for line in new if line.split(b",")[3] == f"w{k}".encode()]
        assert mine == sorted(mine, key=lambda line: int(line.split(b",")[4]))
    assert table.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.csv"]


# ---- journal stores -----------------------------------------------------------------------
def _journal_with_trials(path: Path, trials: int = 4) -> None:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    study = optuna.create_study(study_name="s", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=trials)


def _complete_trials(path: Path) -> int:
    from revprof.sweep.storage import open_storage

    study = optuna.load_study(study_name="s", storage=open_storage(str(path), create=False))
    return sum(t.state.name == "COMPLETE" for t in study.get_trials())


@pytest.mark.parametrize("where", ["middle", "end"])
def test_a_garbage_line_keeps_the_store_readable(tmp_path: Path, where: str) -> None:
    journal = tmp_path / "s.journal"
    _journal_with_trials(journal)
    lines = journal.read_bytes().splitlines(keepends=True)
    at = len(lines) // 2 if where == "middle" else len(lines)
    lines.insert(at, b"this is not json\n")
    journal.write_bytes(b"".join(lines))

    with pytest.warns(UserWarning, match=f"line {at + 1} is not JSON"):
        assert _complete_trials(journal) == 4
    # the next trials go on being recorded and read back
    from revprof.sweep.storage import open_storage

    with pytest.warns(UserWarning):
        storage = open_storage(str(journal), create=False)
    optuna.load_study(study_name="s", storage=storage).optimize(lambda t: t.suggest_float("x", 0, 1),
                                                                n_trials=2)
    with pytest.warns(UserWarning):
        assert _complete_trials(journal) == 6

    code, out, err, exception = invoke(["store", "check", str(journal)])
    assert exception is None and code == 1
    assert f"line {at + 1}: not JSON" in out and "revprof store repair" in out
    code, out, err, exception = invoke(["store", "repair", str(journal)])
    assert exception is None and code == 0, err
    backups = list(tmp_path.glob("s.journal.*.bak"))
    assert len(backups) == 1 and b"this is not json" in backups[0].read_bytes()
    assert b"this is not json" not in journal.read_bytes()
    assert invoke(["store", "check", str(journal)])[0] == 0
    assert _complete_trials(journal) == 6


def test_a_deleted_line_that_leaves_a_trial_running_is_reported(tmp_path: Path) -> None:
    journal = tmp_path / "s.journal"
    _journal_with_trials(journal, trials=3)
    lines = journal.read_bytes().splitlines(keepends=True)
    finishing = [i for i, line in enumerate(lines)
                 if json.loads(line)["op_code"] == optuna.storages.journal._storage.JournalOperation.SET_TRIAL_STATE_VALUES
                 and json.loads(line).get("state") == 1]
    del lines[finishing[1]]  # trial 1 loses the line that finished it
    journal.write_bytes(b"".join(lines))
    code, out, err, exception = invoke(["store", "check", str(journal)])
    assert exception is None
    assert "study 's' trial 1 is RUNNING with no final state" in out


@pytest.mark.slow
def test_two_sweeps_on_one_journal(tmp_path: Path) -> None:
    (tmp_path / "tiny.toml").write_text(TINY.format(trials=6, budget=""))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "revprof", "sweep", "tiny.toml", "--memory-only"]
    first = subprocess.Popen(command + ["--seed", "1"], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    second = subprocess.Popen(command + ["--seed", "2"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    outputs = [p.communicate(timeout=300)[0] for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    from revprof.sweep.storage import open_storage

    storage = open_storage(str(tmp_path / ".revprof" / "studies.journal"), create=False)
    trials = optuna.load_study(study_name="tiny-memory", storage=storage).get_trials()
    numbers = [t.number for t in trials]
    assert numbers == list(range(len(trials)))  # no gap, no duplicate
    assert sum(t.state.name == "COMPLETE" for t in trials) >= 6
    assert invoke(["store", "check", str(tmp_path / ".revprof" / "studies.journal")])[0] == 0


# ---- redaction ----------------------------------------------------------------------------
URL_FORMS = [
    ("postgresql://revprof:s3cret@db:5432/sweeps", "postgresql://revprof:***@db:5432/sweeps"),
    ("postgresql://:s3cret@db/sweeps", "postgresql://:***@db/sweeps"),
    ("postgresql://revprof@db/sweeps?password=s3cret", "postgresql://revprof@db/sweeps?password=***"),
    ("postgresql://revprof@db/sweeps?sslmode=require&password=s3cret&x=1",
     "postgresql://revprof@db/sweeps?sslmode=require&password=***&x=1"),
    ("postgresql://revprof:s3@cret@db/sweeps", "postgresql://revprof:***@db/sweeps"),
    ("postgresql://revprof:s3/cret@db/sweeps", "postgresql://revprof:***@db/sweeps"),
    ("postgresql+psycopg2://revprof:s3cret@[::1]:5432/sweeps",
     "postgresql+psycopg2://revprof:***@[::1]:5432/sweeps"),
    ("postgresql://revprof:s3cret@[::1/sweeps", "postgresql://revprof:***@[::1/sweeps"),
    ("postgres://u:s3cret@db/x?PASSWORD=s3cret", "postgres://u:***@db/x?PASSWORD=***"),
    ("sqlite:///runs.db", "sqlite:///runs.db"),
    ("/tmp/studies.journal", "/tmp/studies.journal"),
]


@pytest.mark.parametrize(("url", "shown"), URL_FORMS)
def test_redact_every_url_form(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "s3" not in redact_text(f"cannot open {url}: failed (password=s3cret)")


@pytest.mark.parametrize("url", [u for u, _ in URL_FORMS if "s3" in u])
def test_no_password_in_errors(in_tmp: Path, url: str) -> None:
    closed = url.replace("@db", "@127.0.0.1:1").replace("@[::1]:5432", "@127.0.0.1:1")
    commands = [["report", "--study", "x", "--storage", closed]]
    if url == URL_FORMS[0][0]:  # the sweep header and its errors, once
        commands.append(["sweep", "tiny.toml", "--memory-only", "--storage", closed])
    for args in commands:
        code, out, err, exception = invoke(args)
        assert exception is None and code != 0
        assert "s3" not in out + err and "cret" not in out + err, out + err


@pytest.mark.slow
def test_no_password_in_worker_command_lines(tmp_path: Path) -> None:
    from revprof.sweep.workers import STORAGE_ENV, spawn_workers

    url = "postgresql://revprof:s3cret@127.0.0.1:1/sweeps?password=s3cret"
    (tmp_path / "tiny.toml").write_text(TINY_STUDY)
    pool = spawn_workers(str(tmp_path / "tiny.toml"), url, "tiny", 2, 2, memory_only=True,
                         log_dir=tmp_path / "logs")
    try:
        for worker in pool.workers:
            cmdline = Path(f"/proc/{worker.process.pid}/cmdline").read_bytes()
            assert b"s3cret" not in cmdline and b"--worker" in cmdline
            # a worker is its own module, not hidden flags of the public `revprof sweep`
            assert cmdline.split(b"\x00")[1:3] == [b"-m", b"revprof.sweep.worker"], cmdline
            assert worker.process.args[-1] != url and url not in worker.process.args
        assert pool.wait(timeout=120)
        for worker in pool.workers:
            log = worker.log.read_text()
            assert "s3cret" not in log and "Traceback" not in log, log
            assert "127.0.0.1:1" in log  # the worker did get the store
    finally:
        pool.signal(9)
    assert STORAGE_ENV == "REVPROF_WORKER_STORAGE"


def test_no_password_in_the_sweep_header_and_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                    ) -> None:
    from revprof.sweep.storage import describe

    assert describe("postgresql://u@db/x?password=s3cret") == "postgresql://u@db/x?password=***"
    from revprof.sweep.storage import open_storage

    sqlite = f"sqlite:///{tmp_path / 'x.db'}?password=s3cret"
    (tmp_path / "x.db").touch()
    with pytest.raises(Exception) as error:  # noqa: PT011 - any one-line error
        open_storage(sqlite, create=False)
    assert "s3cret" not in str(error.value)


# ---- markup -------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["[space]", "[fixed]", "[/x]", "[bold red]"])
def test_markup_in_user_text_is_printed_as_it_is(in_tmp: Path, text: str) -> None:
    error = assert_one_line_error(["model", "--reversible", text], in_tmp)
    assert text in error
    error = assert_one_line_error(["data", "check", f"no{text}dir"], in_tmp)
    assert f"no{text}dir" in error
    study = in_tmp / f"study{text}.toml"
    study.parent.mkdir(parents=True, exist_ok=True)
    study.write_text(study_with("space.width", "[4, 7]"))
    error = assert_one_line_error(["sweep", str(study), "--memory-only"], in_tmp)
    assert f"study{text}.toml" in error
    study.unlink()


def test_bounds_are_in_the_messages() -> None:
    from revprof.errors import RevprofError

    with pytest.raises(RevprofError, match="from 0 to 4294967295"):
        bounds.check_seed(2**32)
    with pytest.raises(RevprofError, match="finite"):
        bounds.check_float("x", float("nan"), 0, 1)
    assert bounds.check_int("x", 3, 1, 3) == 3


@pytest.mark.parametrize("existing", [True, False], ids=["replaced", "new"])
def test_evaluate_csv_keeps_the_file_mode(tmp_path: Path, existing: bool) -> None:
    import nibabel as nib
    import numpy as np

    data = np.zeros((6, 3, 3), dtype=np.uint8)
    data[:2, 1, 1] = [3, 2]
    for path in (tmp_path / "ref" / "BraTS-MET-00001-000-seg.nii.gz",
                 tmp_path / "pred" / "00001-000.nii.gz"):
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    out = tmp_path / "scores.csv"
    if existing:
        out.write_text("old\n")
        out.chmod(0o664)
    expected = 0o664 if existing else 0o666 & ~_umask()
    code, stdout, stderr, exception = invoke(["evaluate", "--pred", str(tmp_path / "pred"), "--ref",
                                              str(tmp_path / "ref"), "--csv", str(out), "--no-hd95"])
    assert exception is None and code == 0, stderr
    assert out.stat().st_mode & 0o777 == expected


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.slow
@pytest.mark.postgres
def test_no_password_in_a_real_postgres_sweep_and_report(tmp_path: Path, postgres_server) -> None:  # noqa: F811
    """A real server (trust authentication ignores the password): the password given in the
    query reaches neither the sweep's stdout/stderr, nor the worker command lines, nor the
    report HTML."""
    url = f"{postgres_server.url}?password=s3cret"
    (tmp_path / "tiny.toml").write_text(TINY_STUDY)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    sweep = subprocess.Popen([sys.executable, "-m", "revprof", "sweep", "tiny.toml", "--memory-only",
                              "--workers", "2", "--storage", url, "--report", "r.html"],
                             cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    seen: list[bytes] = []
    while sweep.poll() is None:  # the command lines of the parent's children while they run
        for child in Path("/proc").glob("[0-9]*"):
            try:
                cmdline = (child / "cmdline").read_bytes()
                cwd = os.readlink(child / "cwd")
            except OSError:
                continue
            if b"\x00--worker\x00" in cmdline and cwd == str(tmp_path):  # not the parent
                seen.append(cmdline)
        time.sleep(0.2)
    out, err = sweep.communicate()
    assert sweep.returncode == 0, out + err
    assert "password=***" in out and "s3cret" not in out + err
    assert seen and not any(b"s3cret" in c for c in seen)
    html = (tmp_path / "r.html").read_text()
    assert "s3cret" not in html and "password=***" in html
    for log in (tmp_path / ".revprof" / "logs").glob("*.log"):
        assert "s3cret" not in log.read_text()
