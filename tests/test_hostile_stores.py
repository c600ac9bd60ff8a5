"""Hostile input, round three, part 1 (issue 26): stores, journals, passwords, study files,
messages, foreign code.

- Passwords: store URLs given to ``store check``/``repair``, a password inside a percent-encoded
  libpq ``options`` value, URLs a path library mangled.
- Journals: one damaged line of every kind (not JSON, an unknown operation, NUL bytes, invalid
  UTF-8, nested deep, too long, an operation with a missing field or a field of the wrong
  type) never locks the store: ``store check`` names it in one error line, every command still
  reads the valid records, ``store repair`` removes it. A fuzz test holds every line the reader
  accepts to Optuna's replay.
- Deep nesting and wrong types in ``--model-kwargs``, study files and report inputs.
- Messages that rewrote or hid: emoji codes, ``exit()`` in a factory, an output without a
  gradient, a budget without a unit, PyTorch's unsafe advice, options that acted on nothing.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revprof.redaction import redact_text, redact_url
from test_reliability import assert_one_line_error, in_tmp, invoke, study_with  # noqa: F401
from test_sweep_run import TINY

ROOT = Path(__file__).resolve().parents[1]
SECRET = "S3cret"


# ---- passwords ----------------------------------------------------------------------------
SECRET_URLS = [
    pytest.param(["store", "check", f"postgresql://u:{SECRET}@127.0.0.1:1/db"], id="store-check"),
    pytest.param(["store", "repair", f"postgresql://u:{SECRET}@127.0.0.1:1/db"], id="store-repair"),
    pytest.param(["store", "check", f"postgresql://u@127.0.0.1:1/db?password={SECRET}"],
                 id="store-check-query"),
    pytest.param(["report", "--study", "S", "--storage",
                  f"postgresql://u:{SECRET}@127.0.0.1:1/db?options=-c%20password%3D{SECRET}"],
                 id="report-libpq-options"),
    pytest.param(["report", "--study", "S", "--storage",
                  f"postgresql://u@127.0.0.1:1/db?options=-c%2520password%253D{SECRET}"],
                 id="report-options-encoded-twice"),
    pytest.param(["export", "S", "--trial", "0", "--storage",
                  f"postgresql://u@127.0.0.1:1/db?sslmode=disable&options=--password%3D{SECRET}"],
                 id="export-options"),
]


@pytest.mark.parametrize("args", SECRET_URLS)
def test_no_password_when_a_store_fails(in_tmp: Path, args: list[str]) -> None:
    code, out, err, exception = invoke(args)
    assert exception is None and code != 0, out + err
    assert SECRET not in out + err and "cret" not in out + err, out + err
    assert_one_line_error(args, in_tmp)


@pytest.mark.parametrize(("url", "shown"), [
    (f"postgresql://u@h/db?options=-c%20password%3D{SECRET}", "postgresql://u@h/db?options=***"),
    (f"postgresql://u@h/db?options=-c%2520password%253D{SECRET}&x=1",
     "postgresql://u@h/db?options=***&x=1"),
    (f"postgresql://u@h/db?pass%77ord={SECRET}", "postgresql://u@h/db?pass%77ord=***"),
    (f"postgresql://u@h/db?sslmode=require&options=-cpassword%3D{SECRET}",
     "postgresql://u@h/db?sslmode=require&options=***"),
    (f"postgresql:/u:{SECRET}@127.0.0.1:1/db", "postgresql:/u:***@127.0.0.1:1/db"),  # Path("...//...")
    ("postgresql://u@h/db?options=-c%20statement_timeout%3D5", None),  # no password: as it is
])
def test_redact_passwords_inside_encoded_values(url: str, shown: str | None) -> None:
    assert redact_url(url) == (url if shown is None else shown)
    assert SECRET not in redact_text(f"cannot open {url}: failed")
    assert SECRET not in redact_text(f"driver: options=-c password%3D{SECRET} rejected")


# ---- journals -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A journal with the 2 trials of the tiny memory-only sweep (study ``tiny-memory``)."""
    from typer.testing import CliRunner

    from revprof.cli.app import app

    folder = tmp_path_factory.mktemp("swept")
    (folder / "tiny.toml").write_text(TINY.format(trials=2, budget=""))
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        result = CliRunner().invoke(app, ["sweep", "tiny.toml", "--memory-only"])
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.output
    return folder / ".revprof" / "studies.journal"


def _records(journal: Path) -> list[dict]:
    return [json.loads(line) for line in journal.read_bytes().splitlines()]


def _line_of(journal: Path, op: int, **match: object) -> dict:
    """A real record of operation ``op`` from the journal (the first matching ``match``)."""
    return next(r for r in _records(journal) if r["op_code"] == op
                and all(r.get(k) == v for k, v in match.items()))


def _without(record: dict, key: str) -> bytes:
    return json.dumps({k: v for k, v in record.items() if k != key}).encode() + b"\n"


def _with(record: dict, **values: object) -> bytes:
    return json.dumps({**record, **values}).encode() + b"\n"


DEEP = b"[" * 100_000 + b"]" * 100_000


def _damaged_lines(journal: Path) -> dict[str, bytes]:
    """Every kind of damaged line, built from the journal's own records."""
    create_study, create_trial = _line_of(journal, 0), _line_of(journal, 4)
    param, finish = _line_of(journal, 5), _line_of(journal, 6, state=1)
    user_attr = _line_of(journal, 8)
    system_attr = {**{k: v for k, v in user_attr.items() if k != "user_attr"}, "op_code": 9,
                   "system_attr": user_attr["user_attr"]}
    study_attr = _line_of(journal, 2)
    return {
        "garbage": b"this is not json\n",
        "unknown-op": b'{"op_code": 11, "worker_id": "w"}\n',
        "op-is-bool": b'{"op_code": true, "worker_id": "w", "study_name": "x", "directions": [1]}\n',
        "nul-bytes": b"\x00\x00\x00\x00{}\n",
        "nul-in-record": _with(user_attr, worker_id="w\x00").replace(b"\\u0000", b"\x00"),
        "invalid-utf8": b'{"op_code": 2, "worker_id": "\xff\xfe"}\n',
        "nested-100000": b'{"op_code": 8, "worker_id": "w", "trial_id": 0, "user_attr": {"a": '
                         + DEEP + b"}}\n",
        "nested-500": _with(user_attr, user_attr={"a": json.loads(b"[" * 500 + b"]" * 500)}),
        "create-study-no-directions": _without(create_study, "directions"),
        "create-study-name-number": _with(create_study, study_name=7),
        "delete-study-no-id": b'{"op_code": 1, "worker_id": "w"}\n',
        "study-attr-no-study-id": _without(study_attr, "study_id"),
        "study-attr-two-keys": _with(study_attr, user_attr={"a": 1, "b": 2}),
        "create-trial-no-start": _without(create_trial, "datetime_start"),
        "create-trial-bad-time": _with(create_trial, datetime_start="yesterday"),
        "create-trial-param-without-distribution": _with(create_trial, params={"x": 1.0}),
        "create-trial-value-and-values": _with(create_trial, value=1.0, values=[1.0, 2.0]),
        "param-no-distribution": _without(param, "distribution"),
        "param-bad-distribution": _with(param, distribution='{"name": "NoSuch"}'),
        "param-out-of-choices": _with(param, distribution=json.dumps(
            {"name": "CategoricalDistribution", "attributes": {"choices": ["a"]}}),
            param_value_internal=5),
        "state-no-values": _without(finish, "values"),
        "state-finished-no-complete-time": _without(finish, "datetime_complete"),
        "state-unknown": _with(finish, state=9),
        "trial-attr-no-trial-id": _without(user_attr, "trial_id"),
        "trial-id-text": _with(system_attr, trial_id="0"),
        "intermediate-no-step": b'{"op_code": 7, "worker_id": "w", "trial_id": 0, '
                                b'"intermediate_value": 1.0}\n',
    }


DAMAGED = ["garbage", "unknown-op", "op-is-bool", "nul-bytes", "nul-in-record", "invalid-utf8",
           "nested-100000", "nested-500", "create-study-no-directions", "create-study-name-number",
           "delete-study-no-id", "study-attr-no-study-id", "study-attr-two-keys",
           "create-trial-no-start", "create-trial-bad-time",
           "create-trial-param-without-distribution", "create-trial-value-and-values",
           "param-no-distribution", "param-bad-distribution", "param-out-of-choices",
           "state-no-values", "state-finished-no-complete-time", "state-unknown",
           "trial-attr-no-trial-id", "trial-id-text", "intermediate-no-step"]


def _insert(source: Path, target: Path, line: bytes, at: int) -> int:
    """Copy ``source`` to ``target`` with ``line`` as line ``at + 1``; returns that number."""
    lines = source.read_bytes().splitlines(keepends=True)
    lines.insert(at, line)
    target.write_bytes(b"".join(lines))
    return at + 1


def invoke_showing_warnings(args: list[str]) -> tuple[int, str, str, BaseException | None]:
    """``invoke``, with warnings printed as the CLI prints them (pytest records them instead)."""
    import warnings

    from revprof.cli._common import _warning_line

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = _warning_line
        return invoke(args)


def _exported_trial_0(journal: Path, folder: Path) -> None:
    """``revprof export`` reads the store and writes trial 0's spec file."""
    code, out, err, exception = invoke_showing_warnings(
        ["export", "tiny-memory", "--trial", "0", "--storage", str(journal), "--out",
         str(folder / "specs")])
    assert exception is None and code == 0, out + err
    assert "Traceback" not in err
    assert all(line.startswith("warning: study store") for line in err.splitlines() if line.strip())
    assert (folder / "specs" / "tiny-memory-trial0000.json").is_file()


@pytest.mark.parametrize("kind", DAMAGED)
def test_one_damaged_line_never_locks_a_store(swept: Path, tmp_path: Path, kind: str) -> None:
    from revprof.report.inputs import study_source

    journal = tmp_path / "s.journal"
    number = _insert(swept, journal, _damaged_lines(swept)[kind], at=10)
    # store check: the findings on stdout, one error line on stderr, exit status 1
    code, out, err, exception = invoke(["store", "check", str(journal)])
    assert exception is None and code == 1, (out, err, exception)
    assert f"\nline {number}: " in out, out
    errors = [line for line in err.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: ") and f"line {number}" in errors[0]
    # every command that reads the store still reads every valid record
    with pytest.warns(UserWarning, match=f"line {number} is "):
        assert len(study_source("tiny-memory", str(journal)).trials) == 2
    _exported_trial_0(journal, tmp_path)


def test_repair_removes_every_kind_of_damaged_line(swept: Path, tmp_path: Path) -> None:
    journal = tmp_path / "s.journal"
    shutil.copy(swept, journal)
    damaged = _damaged_lines(swept)
    for kind in DAMAGED:
        _insert(journal, journal, damaged[kind], at=10)
    code, out, err, exception = invoke(["store", "check", str(journal)])
    assert exception is None and code == 1
    assert out.count("\nline ") == len(DAMAGED), out
    code, out, err, exception = invoke(["store", "repair", str(journal)])
    assert exception is None and code == 0, err
    assert f"removed {len(DAMAGED)} line(s)" in out
    assert journal.read_bytes() == swept.read_bytes()  # exactly the valid records, in order
    assert invoke(["store", "check", str(journal)])[0] == 0
    _exported_trial_0(journal, tmp_path)


def test_damaged_lines_are_warned_about_a_few_at_a_time(swept: Path, tmp_path: Path) -> None:
    journal = tmp_path / "s.journal"
    shutil.copy(swept, journal)
    for _ in range(50):
        _insert(journal, journal, b"garbage\n", at=10)
    code, out, err, exception = invoke_showing_warnings(
        ["export", "tiny-memory", "--trial", "0", "--storage", str(journal), "--out",
         str(tmp_path / "specs")])
    assert exception is None and code == 0
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert 1 < len(warnings) <= 5 and "without a warning each" in warnings[-1], err


@pytest.mark.slow
def test_a_line_too_long_is_skipped_without_reading_it_whole(swept: Path, tmp_path: Path) -> None:
    from revprof.sweep.journal import MAX_RECORD_BYTES

    journal = tmp_path / "s.journal"
    padding = b"x" * (MAX_RECORD_BYTES + 10)
    number = _insert(swept, journal, b'{"op_code": 0, "worker_id": "w", "study_name": "'
                     + padding + b'"}\n', at=10)
    code, out, err, exception = invoke(["store", "check", str(journal)])
    assert exception is None and code == 1
    assert f"line {number}: a line of {len(padding) + 51:,} bytes" in out, out
    _exported_trial_0(journal, tmp_path)


def test_the_report_reads_a_store_with_a_damaged_line(swept: Path, tmp_path: Path) -> None:
    journal = tmp_path / "s.journal"
    number = _insert(swept, journal, _damaged_lines(swept)["create-trial-no-start"], at=10)
    args = ["report", "--study", "no-such", "--storage", str(journal)]
    code, out, err, exception = invoke_showing_warnings(args)  # fails after reading the store
    assert exception is None and code == 1
    assert f"line {number} is a CREATE_TRIAL record with no 'datetime_start'" in err
    assert "no study named 'no-such'" in err and "tiny-memory" in err


def test_optuna_journal_operations_are_the_ones_revprof_reads() -> None:
    from revprof.sweep.journal import check_operation_codes

    check_operation_codes()


_JSON = st.recursive(st.none() | st.booleans() | st.integers(-3, 2**64) | st.floats()
                     | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_every_record_the_reader_accepts_optuna_replays(swept: Path, tmp_path: Path,
                                                             data: st.DataObject) -> None:
    """A real record of the sweep, with one field removed or replaced by any JSON value:
    either the reader skips the line, or Optuna replays the store with it; ``store check``
    never ends in a traceback."""
    import optuna

    from revprof.sweep.journal import parse_record

    records = _records(swept)
    record = copy.deepcopy(data.draw(st.sampled_from(records)))
    key = data.draw(st.sampled_from(sorted(record)))
    if data.draw(st.booleans()):
        del record[key]
    else:
        record[key] = data.draw(_JSON)
    line = json.dumps(record).encode() + b"\n"
    journal = tmp_path / f"fuzz{abs(hash(line))}.journal"
    _insert(swept, journal, line, at=data.draw(st.integers(1, len(records))))
    accepted, _ = parse_record(line)
    if accepted is not None:
        from optuna.storages.journal import JournalFileBackend

        storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
        for summary in optuna.get_all_study_summaries(storage):
            optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()
    code, out, err, exception = invoke(["store", "check", str(journal)])
    assert exception is None and code in (0, 1), (record, exception)
    assert "Traceback" not in out + err


# ---- deep nesting and wrong types ---------------------------------------------------------
STUDY_FILES = [
    pytest.param("space.reversible", "5", "space.reversible must be", id="reversible-number"),
    pytest.param("space.reversible", "[1.5]", "space.reversible must be", id="reversible-float"),
    pytest.param("space.reversible", "true", "space.reversible must be", id="reversible-bool"),
    pytest.param("space.arch", "5", "space.arch must be one of", id="arch-number"),
    pytest.param("study.budget", "12", "study.budget must be a size with a unit", id="budget-12"),
    pytest.param("study.budget", "12.5", "study.budget must be a size with a unit", id="budget-float"),
    pytest.param("study.budget", "true", "study.budget must be a size with a unit", id="budget-bool"),
    pytest.param("space.width", "[" * 5000 + "]" * 5000, "nested too deep", id="deep-array"),
    pytest.param("space.width.low" + ".a" * 3000, "1", "nest more than 16 levels", id="deep-table"),
    pytest.param("study.description" + ".a" * 3000, "1", "nest more than 16 levels",
                 id="deep-description"),
]


@pytest.mark.parametrize(("key", "value", "expect"), STUDY_FILES)
def test_study_file_types_and_nesting_are_one_error_line(in_tmp: Path, key: str, value: str,
                                                         expect: str) -> None:
    if key.startswith("space.width."):  # a dotted key: tables in tables
        text = TINY.format(trials=2, budget="").replace("width = [4, 8]", f"{key[6:]} = {value}")
    elif key.startswith("study."):
        text = TINY.format(trials=2, budget=f"{key[6:]} = {value}")
    else:
        text = study_with(key, value)
    (in_tmp / "bad.toml").write_text(text)
    assert_one_line_error(["sweep", "bad.toml", "--memory-only"], in_tmp, expect)
    assert not (in_tmp / ".revprof").exists()


_TOML_VALUES = ["0", "-1", "1.5", "nan", "true", '"x"', '""', "[]", "[1]", '["a"]', "[[1]]",
                "{}", "{a = 1}", "[{a = 1}]", "1979-05-27", "07:32:00", "[true]", "[1.5]",
                '[0, "a"]']


@pytest.mark.slow
@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_every_study_key_with_every_type(data: st.DataObject) -> None:
    """Any TOML type at any key of any table (and in an [[enqueue]] spec) is a valid value or a
    RevprofError naming the file, never another exception."""
    import tomllib

    from revprof.errors import RevprofError
    from revprof.recipe import FIELDS
    from revprof.spec import ArchSpec
    from revprof.sweep.studyfile import parse_study
    from revprof.sweep.studyfile.schema import (DATA_KEYS, FIXED_KEYS, SAMPLER_KEYS, SPACE_KEYS,
                                                STUDY_KEYS)
    import dataclasses

    keys = {"study": STUDY_KEYS, "data": DATA_KEYS, "fixed": FIXED_KEYS,
            "recipe": (*FIELDS, "preset"), "space": SPACE_KEYS, "sampler": SAMPLER_KEYS,
            "enqueue": ("label", "width", "reversible", "patch", "spec"),
            "spec": tuple(f.name for f in dataclasses.fields(ArchSpec))}
    table = data.draw(st.sampled_from(sorted(keys)))
    key = data.draw(st.sampled_from(keys[table]))
    value = tomllib.loads(f"v = {data.draw(st.sampled_from(_TOML_VALUES))}")["v"]
    raw = tomllib.loads(TINY.format(trials=2, budget=""))
    if table == "enqueue":
        raw["enqueue"][0][key] = value
    elif table == "spec":
        raw["enqueue"] = [{"spec": {"widths": [8, 16], key: value}}]
    else:
        raw.setdefault(table, {})[key] = value
    try:
        parse_study(raw, "fuzz.toml")
    except RevprofError as error:
        assert str(error).startswith("fuzz.toml"), error


def test_deep_model_kwargs_are_one_error_line(in_tmp: Path) -> None:
    assert_one_line_error(["model", "--model", "torch.nn:Conv3d", "--model-kwargs",
                           "[" * 100_000 + "]" * 100_000], in_tmp, "nested too deep")


@pytest.mark.parametrize("column", ["spec", "patch", "recipe"])
def test_deep_json_in_a_results_table_is_one_error_line(in_tmp: Path, column: str) -> None:
    row = {"spec": '{"widths": [8, 16], "arch": "revunet"}', "peak_bytes": "100",
           "patch": "16,16,16", "recipe": '{"preset": "paper"}'}
    row[column] = "[" * 5000 + "]" * 5000
    (in_tmp / "runs.csv").write_text(",".join(row) + "\n" + ",".join(
        '"' + v.replace('"', '""') + '"' for v in row.values()) + "\n")
    assert_one_line_error(["report", "--results", "runs.csv", "--out", "r.html"], in_tmp,
                          "row 0: a value is not valid: JSON nested too deep")


# ---- messages that rewrote or hid ---------------------------------------------------------
@pytest.fixture
def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A user's module of hostile factories, importable as ``hostilefactories``."""
    (tmp_path / "hostilefactories.py").write_text(textwrap.dedent("""
        import sys
        import time
        import torch

        class Escape(BaseException):
            pass

        class Net(torch.nn.Module):
            def __init__(self, name="net"):
                super().__init__()
                self.conv = torch.nn.Conv3d(4, 3, 1)
            def forward(self, x):
                return self.conv(x)

        class IntOutput(Net):
            def forward(self, x):
                return self.conv(x).long()

        class NoGrad(Net):
            def forward(self, x):
                with torch.no_grad():
                    return self.conv(x)

        class Detached(Net):
            def forward(self, x):
                return self.conv(x).detach()

        class ExitsInForward(Net):
            def forward(self, x):
                sys.exit(0)

        class NormAfterDown(torch.nn.Module):
            # GroupNorm after one downsampling: a 1x1x1 or 2x2x2 patch leaves one value per group
            def __init__(self):
                super().__init__()
                self.down = torch.nn.Conv3d(4, 8, 3, stride=2, padding=1)
                self.norm = torch.nn.GroupNorm(8, 8)
                self.up = torch.nn.ConvTranspose3d(8, 3, 2, stride=2)
            def forward(self, x):
                return self.up(self.norm(self.down(x)))

        def named(name="net"):
            net = Net()
            net.add_module(name, torch.nn.ReLU())  # a layer the summary table lists by name
            return net

        def base_exception():
            raise Escape("out of band")

        def system_exit():
            sys.exit(3)

        def keyboard_interrupt():
            raise KeyboardInterrupt

        def sleeps():
            print("factory started", flush=True)
            time.sleep(60)
            return Net()
    """))
    (tmp_path / "exits_on_import.py").write_text("import sys\nsys.exit(2)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "hostilefactories"


MODELS = [
    pytest.param("builtins:exit", "the factory raised SystemExit(None)", id="builtins-exit"),
    pytest.param("{m}:base_exception", "the factory raised Escape: out of band", id="base-exception"),
    pytest.param("{m}:system_exit", "the factory raised SystemExit(3)", id="system-exit"),
    pytest.param("{m}:keyboard_interrupt", "raised KeyboardInterrupt itself", id="keyboard-interrupt"),
    pytest.param("exits_on_import:f", "importing 'exits_on_import' raised SystemExit(2)",
                 id="exit-on-import"),
    pytest.param("{m}:ExitsInForward", "the forward on a 1x4x8x8x8 input raised SystemExit(0)",
                 id="exit-in-forward"),
    pytest.param("{m}:IntOutput", "is a torch.int64 tensor; a training step needs floating-point",
                 id="integer-output"),
    pytest.param("{m}:NoGrad", "carries no gradient", id="no-grad"),
    pytest.param("{m}:Detached", "carries no gradient", id="detached"),
]


@pytest.mark.parametrize(("factory", "expect"), MODELS)
@pytest.mark.parametrize("command", [
    ["measure", "--backend", "simulate", "--patch", "8"],
    ["measure", "--backend", "cpu", "--patch", "8"],
    ["plan", "--budget", "1GiB", "--patch", "8"],
], ids=["simulate", "cpu", "plan"])
def test_foreign_code_that_exits_or_has_no_gradient(hostile: str, tmp_path: Path, command: list[str],
                                                     factory: str, expect: str) -> None:
    name = factory.format(m=hostile)
    text = assert_one_line_error([*command, "--model", name], tmp_path, expect)
    assert f"model {name!r}" in text


def test_a_factory_that_exits_is_named_by_model_too(hostile: str, tmp_path: Path) -> None:
    assert_one_line_error(["model", "--model", "builtins:exit"], tmp_path, "model 'builtins:exit'")


@pytest.mark.slow
def test_a_real_ctrl_c_still_interrupts_a_factory(hostile: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    process = subprocess.Popen([sys.executable, "-m", "revprof", "model", "--model",
                                f"{hostile}:sleeps"], cwd=tmp_path, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout.readline().strip() == "factory started"
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130 and err.strip() == "interrupted", (out, err)


EMOJI = ":ok:"


def test_emoji_codes_in_user_text_are_printed_as_they_are(in_tmp: Path, hostile: str,
                                                          swept: Path) -> None:
    assert f"x{EMOJI}" in assert_one_line_error(["model", "--model", f"x{EMOJI}"], in_tmp)
    assert f"no{EMOJI}dir" in assert_one_line_error(["data", "check", f"no{EMOJI}dir"], in_tmp)
    study = in_tmp / f"study{EMOJI}.toml"
    study.write_text(study_with("space.width", "[4, 7]"))
    assert f"study{EMOJI}.toml" in assert_one_line_error(["sweep", study.name, "--memory-only"],
                                                         in_tmp)
    study.unlink()
    assert f"'{EMOJI}'" in assert_one_line_error(["report", "--study", EMOJI, "--storage",
                                                  str(swept)], in_tmp)
    code, out, err, exception = invoke(["model", "--model", f"{hostile}:named", "--model-kwargs",
                                        json.dumps({"name": EMOJI})])
    assert exception is None and code == 0, err
    assert f"│ {EMOJI} " in out and "\N{SQUARED OK}" not in out, out


def test_progress_descriptions_show_user_text_as_it_is() -> None:
    from rich.progress import Progress

    from revprof.cli._common import description_column

    column = description_column()
    with Progress(column, disable=True) as progress:
        progress.add_task(f"evaluating case{EMOJI}[b]x[/b]")
        assert column.render(progress.tasks[0]).plain == f"evaluating case{EMOJI}[b]x[/b]"


@pytest.mark.parametrize("content", [b"not a zip", None], ids=["garbage", "code"])
def test_an_unreadable_checkpoint_never_suggests_weights_only_false(tmp_path: Path,
                                                                    content: bytes | None) -> None:
    import torch

    checkpoint = tmp_path / "m.pt"
    if content is None:  # a pickle that would run a command when loaded unsafely
        torch.save({"spec": {}, "run": _RunsCode()}, checkpoint)
    else:
        checkpoint.write_bytes(content)
    text = assert_one_line_error(["predict", "--model", str(checkpoint), "--data", str(tmp_path),
                                  "--out", str(tmp_path / "out")], tmp_path,
                                 "is not a readable checkpoint")
    assert "weights_only" not in text and "trusted" not in text and "never code" in text


class _RunsCode:
    def __reduce__(self) -> tuple:
        return (os.system, ("echo ran",))


OPTIONS = [
    pytest.param(["model", "--levels", "2", "--width", "4", "--in-channels", "1"],
                 "--in-channels applies to a --model network", id="in-channels-own-network"),
    pytest.param(["model", "--levels", "2", "--width", "4", "--in-channels",
                  "99999999999999999999"], "--in-channels applies to a --model network",
                 id="in-channels-huge-own-network"),
    pytest.param(["model", "--model", "torch.nn:Conv3d", "--model-kwargs",
                  '{"in_channels": 4, "out_channels": 3, "kernel_size": 1}', "--in-channels",
                  "99999999999999999999"], "--in-channels must be from 1 to 8192", id="in-channels-huge"),
    pytest.param(["measure", "--levels", "2", "--width", "4", "--patch", "8", "--patch-multiple", "8"],
                 "--patch-multiple applies to a --model network", id="patch-multiple-own-network"),
    pytest.param(["plan", "--budget", "1GiB", "--levels", "2", "--in-channels", "2"],
                 "--in-channels applies to a --model network", id="plan-in-channels"),
    pytest.param(["measure", "--spec", "x.json", "--in-channels", "2"],
                 "--in-channels applies to a --model network", id="spec-in-channels"),
    pytest.param(["model", "--model", "torch.nn:Conv3d", "--growth", "2.0"],
                 "drop the architecture options (--growth)", id="model-growth-default-value"),
    pytest.param(["measure", "--model", "torch.nn:Conv3d", "--arch", "revunet", "--patch", "8"],
                 "drop the architecture options (--arch)", id="model-arch-default-value"),
    pytest.param(["plan", "--budget", "1GiB", "--model", "torch.nn:Conv3d", "--no-checkpoint"],
                 "drop the architecture options (--checkpoint)", id="model-no-checkpoint"),
]


@pytest.mark.parametrize(("args", "expect"), OPTIONS)
def test_an_option_acts_or_is_refused(in_tmp: Path, args: list[str], expect: str) -> None:
    assert_one_line_error(args, in_tmp, expect)


def test_plan_probes_a_patch_the_network_accepts(hostile: str, tmp_path: Path) -> None:
    """A factory of unknown patch multiple whose GroupNorm refuses a 1x1x1 and a 2x2x2 patch:
    the planner takes 4 (the smallest cube its forward accepts) as the multiple. The budget
    fits 4x4x4 but not the largest patch, so the smallest is checked."""
    from revprof.memory.measure import measure_memory

    model = f"{hostile}:NormAfterDown"
    small, large = (measure_memory(model=model, patch=p, backend="simulate").peak_bytes
                    for p in (4, 16))
    code, out, err, exception = invoke(["plan", "--model", model, "--budget",
                                        f"{(small + large) // 2}B", "--max-patch", "16,16,16",
                                        "--criterion", "allocated", "--json"])
    assert exception is None and code == 0, err
    answer = json.loads(out)
    assert (4, 4, 4) in {tuple(c["patch"]) for c in answer["checked"]}
    assert all(p % 4 == 0 for c in answer["checked"] for p in c["patch"])
    assert 4 ** 3 <= answer["candidates"][0]["voxels"] < 16 ** 3


@pytest.mark.slow
def test_plan_segresnet_from_its_factory(tmp_path: Path) -> None:
    pytest.importorskip("monai")
    code, out, err, exception = invoke([
        "plan", "--model", "monai.networks.nets:SegResNet", "--model-kwargs",
        '{"spatial_dims": 3, "in_channels": 4, "out_channels": 3, "init_filters": 8}',
        "--budget", "2GiB", "--json"])
    assert exception is None and code == 0, err
    answer = json.loads(out)
    assert all(p % 8 == 0 for p in answer["candidates"][0]["patch"])
