"""Hostile input, round three, part 2 (issue 26): output paths, writers, huge integers, time
limits on user code, checkpoints.

- Huge integers: every integer a user gives (options, spec files) is refused in one line that
  states its bound, before any work.
- Options that act on nothing (``measure --seed`` without ``--steps``, ``plan --top`` without
  ``--patch``) are refused in one line.
- A ``--model`` factory or forward that never returns ends in one line after the time limit
  (``REVPROF_USER_CODE_TIMEOUT``), in a real subprocess.
- Output paths: an existing file where a folder is wanted, a path under a file, ``/proc``,
  ``/dev/full``, a read-only or full file system, a name longer than the file system allows:
  one line before any work, for every command that writes.
- Writers: a real subprocess killed (SIGKILL) or interrupted (SIGINT) in the middle of a write
  leaves no file under its final name; a full disk leaves nothing half-written.
- Checkpoints: an empty file, a patch that is text, a spacing out of bounds: one line each.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from test_reliability import assert_one_line_error, in_tmp, invoke  # noqa: F401 - in_tmp: a fixture

ROOT = Path(__file__).resolve().parents[1]
HUGE = "99999999999999999999"
TINY_NET = ["--levels", "2", "--widths", "4,8"]


def revprof(args: list[str], cwd: Path, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``revprof ARGS`` in a real subprocess."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd), str(ROOT)]),
                   "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "revprof", *args], cwd=cwd, env=environment,
                          text=True, capture_output=True, timeout=timeout)


def assert_one_line(result: subprocess.CompletedProcess[str], expect: str) -> str:
    """A subprocess that ended non-zero with one ``error:`` line containing ``expect``."""
    assert result.returncode not in (0, -signal.SIGKILL), result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    assert expect in errors[0], errors[0]
    return errors[0]


# ---- huge integers ------------------------------------------------------------------------
HUGE_OPTIONS = [
    pytest.param(["measure", "--steps", HUGE, "--data", "data"], "from 1 to 10000000", id="measure-steps"),
    pytest.param(["measure", "--batch", HUGE], "from 1 to 1024", id="measure-batch"),
    pytest.param(["measure", "--accumulate", HUGE], "from 1 to 1024", id="measure-accumulate"),
    pytest.param(["measure", "--set", f"steps={HUGE}"], "from 1 to 10000000", id="measure-set-steps"),
    pytest.param(["measure", "--steps", "2", "--seed", HUGE], "from 0 to 4294967295", id="measure-seed"),
    pytest.param(["measure", "--steps", "2", "--val-cases", HUGE], "from 0 to 10000", id="measure-val-cases"),
    pytest.param(["measure", "--steps", "2", "--crop", HUGE], "at most 1024", id="measure-crop"),
    pytest.param(["measure", "--levels", HUGE], "from 2 to 10", id="measure-levels"),
    pytest.param(["measure", "--width", HUGE], "from 1 to 8192", id="measure-width"),
    pytest.param(["measure", "--max-width", HUGE], "from 1 to 8192", id="measure-max-width"),
    pytest.param(["measure", "--depth", HUGE], "from 1 to 64", id="measure-depth"),
    pytest.param(["measure", "--patch", HUGE], "at most 1024", id="measure-patch"),
    pytest.param(["measure", "--model", "torch.nn:Identity", "--in-channels", HUGE], "from 1 to 8192",
                 id="measure-in-channels"),
    pytest.param(["plan", "--budget", "1GiB", "--batch", HUGE], "from 1 to 1024", id="plan-batch"),
    pytest.param(["plan", "--budget", "1GiB", "--patch", "16", "--max-depth", HUGE], "from 1 to 64",
                 id="plan-max-depth"),
    pytest.param(["plan", "--budget", "1GiB", "--patch", "16", "--top", HUGE], "from 1 to 1000",
                 id="plan-top"),
    pytest.param(["plan", "--budget", "1GiB", "--max-seconds", "1e300"], "from 0 to 604800",
                 id="plan-max-seconds"),
    pytest.param(["plan", "--budget", "1GiB", "--max-patch", HUGE], "at most 1024", id="plan-max-patch"),
    pytest.param(["plan", *TINY_NET, "--budget", f"{HUGE}GiB"], "at most 1 PiB", id="plan-budget"),
    pytest.param(["plan", *TINY_NET, "--budget", "1GiB", "--context", f"{HUGE}GiB"], "at most 1 PiB",
                 id="plan-context"),
    pytest.param(["plan", *TINY_NET, "--budget", "1GiB", "--workspace", f"{HUGE}GiB"], "at most 1 PiB",
                 id="plan-workspace"),
    pytest.param(["measure", *TINY_NET, "--device-memory", f"{HUGE}GiB"], "at most 1 PiB",
                 id="measure-device-memory"),
    pytest.param(["report", "--results", "file.txt", "--budget", f"{HUGE}GiB"], "at most 1 PiB",
                 id="report-budget"),
    pytest.param(["bench", "--quick", "--batch", HUGE], "from 1 to 1024", id="bench-batch"),
    pytest.param(["data", "synth", "out", "--cases", HUGE], "from 1 to 10000", id="synth-cases"),
    pytest.param(["data", "synth", "out", "--cases", "1", "--seed", HUGE], "4294967295", id="synth-seed"),
    pytest.param(["data", "synth", "out", "--cases", "1", "--shape", f"{HUGE},16,16"], "16..1024",
                 id="synth-shape"),
    pytest.param(["sweep", "tiny.toml", "--steps", HUGE], "from 1 to 10000000", id="sweep-steps"),
    pytest.param(["sweep", "tiny.toml", "--trials", HUGE], "from 1 to 100000", id="sweep-trials"),
    pytest.param(["sweep", "tiny.toml", "--workers", HUGE], "from 1 to 256", id="sweep-workers"),
    pytest.param(["sweep", "tiny.toml", "--seed", HUGE], "from 0 to 4294967295", id="sweep-seed"),
]


@pytest.mark.parametrize(("args", "bound"), HUGE_OPTIONS)
def test_a_huge_integer_option_is_refused_with_its_bound(in_tmp: Path, args: list[str],
                                                         bound: str) -> None:
    (in_tmp / "data").mkdir()
    assert_one_line_error(args, in_tmp, bound)


def _spec_file(**changes: object) -> dict[str, object]:
    from revprof.spec import ArchSpec
    from revprof.train.settings import TrainSettings
    from revprof.train.specfile import SpecFile

    data = SpecFile(ArchSpec(widths=(4, 8), encoder_depth=(1, 1), decoder_depth=(1, 1),
                             encoder_reversible=(True, True), decoder_reversible=(True, True),
                             groups=2), TrainSettings()).to_dict()
    for path, value in changes.items():
        table, key, *rest = path.split(".")
        target = data[table]
        if rest:
            target, key = target[key], rest[0]  # type: ignore[index]
        target[key] = value  # type: ignore[index]
    return data


SPEC_INTEGERS = ["spec.in_channels", "spec.out_channels", "spec.groups", "train.val_cases",
                 "train.seed", "train.synthetic_cases", "train.recipe.batch", "train.recipe.steps",
                 "train.recipe.accumulate"]


@pytest.mark.parametrize("key", SPEC_INTEGERS)
@pytest.mark.parametrize("value", [10**20, -(10**20)])
def test_a_huge_integer_in_a_spec_file_is_refused(in_tmp: Path, key: str, value: int) -> None:
    (in_tmp / "net.json").write_text(json.dumps(_spec_file(**{key: value})))
    text = assert_one_line_error(["measure", "--spec", "net.json", "--backend", "simulate"], in_tmp)
    assert key.rpartition(".")[2] in text and " to " in text, text  # the field and its bound


def test_a_spec_file_asking_for_a_billion_synthetic_cases_is_refused(in_tmp: Path) -> None:
    (in_tmp / "net.json").write_text(json.dumps(_spec_file(**{"train.synthetic_cases": 10**9})))
    assert_one_line_error(["measure", "--spec", "net.json", "--steps", "1"], in_tmp,
                          "synthetic_cases must be from 1 to 10000")
    assert not (in_tmp / ".revprof").exists()  # no staging folder, no data


def test_every_integer_of_a_spec_file_has_a_bound() -> None:
    """Fuzz over the file: each integer in it, set to 10**20, is refused."""
    from revprof.errors import RevprofError
    from revprof.train.specfile import SpecFile

    def integers(value: object, path: tuple[object, ...] = ()) -> Iterator[tuple[object, ...]]:
        if isinstance(value, dict):
            for key, item in value.items():
                yield from integers(item, (*path, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                yield from integers(item, (*path, index))
        elif isinstance(value, int) and not isinstance(value, bool) and path[0] != "revprof_spec_file":
            yield path

    base = _spec_file()
    found = list(integers(base))
    assert len(found) >= 20
    for path in found:
        data = json.loads(json.dumps(base))
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = 10**20
        with pytest.raises(RevprofError):
            SpecFile.from_dict(data)


# ---- options that act on nothing ----------------------------------------------------------
IDLE = [
    pytest.param(["measure", *TINY_NET, "--seed", "3"], "--seed acts only on a training run", id="seed"),
    pytest.param(["measure", *TINY_NET, "--device", "cpu"], "--device acts only", id="device"),
    pytest.param(["measure", *TINY_NET, "--val-cases", "1"], "--val-cases acts only", id="val-cases"),
    pytest.param(["measure", *TINY_NET, "--data", "."], "--data acts only", id="data"),
    pytest.param(["measure", *TINY_NET, "--crop", "32"], "--crop acts only", id="crop"),
    pytest.param(["measure", *TINY_NET, "--spacing", "1,1,1"], "--spacing acts only", id="spacing"),
    pytest.param(["measure", *TINY_NET, "--convention", "brats2021"], "--convention acts only",
                 id="convention"),
    pytest.param(["measure", *TINY_NET, "--results", "r.csv"], "--results acts only", id="results"),
    pytest.param(["measure", *TINY_NET, "--save-model", "m.pt"], "write a training run's results: add --steps",
                 id="save-model"),
    pytest.param(["measure", *TINY_NET, "--save-predictions", "p"], "write a training run's results: add --steps",
                 id="save-predictions"),
    pytest.param(["measure", *TINY_NET, "--steps", "1", "--backend", "cpu"], "--backend acts on the memory",
                 id="backend-with-steps"),
    pytest.param(["measure", *TINY_NET, "--steps", "1", "--alloc-conf", "expandable_segments:True"],
                 "--alloc-conf acts on the memory", id="alloc-conf-with-steps"),
    pytest.param(["measure", *TINY_NET, "--timeline"], "--timeline adds the timeline to --json",
                 id="timeline-without-json"),
    pytest.param(["plan", *TINY_NET, "--budget", "1GiB", "--top", "3"], "--top does not act on the patch",
                 id="plan-top-without-patch"),
    pytest.param(["plan", *TINY_NET, "--budget", "1GiB", "--search", "depth"], "--search does not act",
                 id="plan-search-without-patch"),
    pytest.param(["plan", *TINY_NET, "--budget", "1GiB", "--max-depth", "3"], "--max-depth does not act",
                 id="plan-max-depth-without-patch"),
    pytest.param(["plan", *TINY_NET, "--budget", "1GiB", "--patch", "16", "--max-patch", "32"],
                 "--max-patch does not act on the network search", id="plan-max-patch-with-patch"),
    pytest.param(["plan", *TINY_NET, "--budget", "1GiB", "--patch", "16", "--data", "."],
                 "--data does not act", id="plan-data-with-patch"),
    pytest.param(["plan", "--model", "torch.nn:Identity", "--in-channels", "4", "--budget", "1GiB", "--patch", "16", "--top", "2"],
                 "--top does not act on the batch search", id="plan-top-with-model"),
    pytest.param(["measure", "--model", "builtins:exit", "--patch", "8"], "raised SystemExit",
                 id="builtins-exit"),
]


@pytest.mark.parametrize(("args", "expect"), IDLE)
def test_an_option_that_acts_on_nothing_is_refused(in_tmp: Path, args: list[str], expect: str) -> None:
    assert_one_line_error(args, in_tmp, expect)


# ---- a time limit on user code ------------------------------------------------------------
HANGING = textwrap.dedent("""
    import time
    import torch

    def sleeps(**kwargs):
        while True:
            time.sleep(1000)

    def spins(**kwargs):
        while True:
            pass

    def swallows(**kwargs):  # swallows even the alarm's BaseException
        while True:
            try:
                time.sleep(1000)
            except BaseException:
                pass

    class _Hangs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv3d(4, 3, 1)

        def forward(self, x):
            while True:
                time.sleep(1000)

    def hangs_in_forward(**kwargs):
        return _Hangs()
""")


@pytest.fixture
def hanging(tmp_path: Path) -> str:
    (tmp_path / "hanging_models.py").write_text(HANGING)
    return "hanging_models"


@pytest.mark.slow
@pytest.mark.parametrize(("factory", "command", "expect"), [
    pytest.param("sleeps", ["model"], "the factory did not return within 1 s", id="factory-sleeps"),
    pytest.param("spins", ["plan", "--budget", "1GiB"], "the factory did not return within 1 s",
                 id="factory-spins"),
    pytest.param("hangs_in_forward", ["measure", "--backend", "simulate", "--patch", "8"],
                 "the forward on a 1x4x8x8x8 input did not return within 1 s", id="forward-hangs"),
    pytest.param("swallows", ["model"], "ignores being stopped", id="swallows-the-alarm"),
])
def test_user_code_that_never_returns_ends_in_one_line(hanging: str, tmp_path: Path, factory: str,
                                                       command: list[str], expect: str) -> None:
    started = time.monotonic()
    result = revprof([*command, "--model", f"{hanging}:{factory}"], tmp_path,
                     env={"REVPROF_USER_CODE_TIMEOUT": "1"}, timeout=90)
    assert_one_line(result, expect)
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "1e99"])
def test_a_bad_time_limit_is_refused(hanging: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     value: str) -> None:
    monkeypatch.setenv("REVPROF_USER_CODE_TIMEOUT", value)
    assert_one_line_error(["model", "--model", "torch.nn:Identity"], tmp_path,
                          "REVPROF_USER_CODE_TIMEOUT must be seconds from 0")


def test_the_time_limit_ends_and_restores_the_alarm(monkeypatch: pytest.MonkeyPatch) -> None:
    from revprof.errors import RevprofError
    from revprof.nn.factory import user_code

    monkeypatch.setenv("REVPROF_USER_CODE_TIMEOUT", "0.2")
    previous = signal.getsignal(signal.SIGALRM)
    with pytest.raises(RevprofError, match="did not return within 0.2 s"):
        with user_code("a test"):
            time.sleep(5)
    with user_code("a quick call"):
        pass
    assert signal.getsignal(signal.SIGALRM) is previous
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


# ---- output paths -------------------------------------------------------------------------
def _mount_tmpfs(folder: Path, options: str) -> bool:
    """Mount a small tmpfs at ``folder`` (root only; False where mounting is not allowed)."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                          capture_output=True)
    return done.returncode == 0


def _fill(folder: Path) -> None:
    """Fill the file system of ``folder`` to the last block."""
    handle = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(handle, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(handle)


@pytest.fixture(scope="module")
def mounts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """A read-only and a full file system (tmpfs), where this user may mount them."""
    base = tmp_path_factory.mktemp("mounts")
    found: dict[str, Path] = {}
    if _mount_tmpfs(base / "ro", "size=1m,ro"):
        found["read-only"] = base / "ro"
    if _mount_tmpfs(base / "full", "size=64k"):
        _fill(base / "full")
        found["full"] = base / "full"
    yield found
    for folder in found.values():
        subprocess.run(["umount", str(folder)], capture_output=True)


LONG_NAME = "n" * 300
BAD_PLACES = {  # kind: (a path built in a test folder, words of the expected message)
    "existing-file": (lambda here, m: here / "file.txt", "is a file"),
    "under-a-file": (lambda here, m: here / "file.txt" / "sub", "is a file, not a folder"),
    "proc": (lambda here, m: Path("/proc/self/out"), "not a place for output"),
    "dev-full": (lambda here, m: Path("/dev/full"), "not a place for output"),
    "name-too-long": (lambda here, m: here / LONG_NAME, "the file system allows 255"),
    "read-only": (lambda here, m: m["read-only"] / "out", "not writable"),
    "full-disk": (lambda here, m: m["full"] / "out", "full file system"),
}
FILE_PLACES = {
    "existing-folder": (lambda here, m: here / "folder", "is a folder"),
    "under-a-file": (lambda here, m: here / "file.txt" / "out.x", "is a file, not a folder"),
    "proc": (lambda here, m: Path("/proc/self/out.x"), "under /proc"),
    "dev-full": (lambda here, m: Path("/dev/full"), "under /dev"),
    "name-too-long": (lambda here, m: here / f"{LONG_NAME}.x", "the file system allows 255"),
    "read-only": (lambda here, m: m["read-only"] / "out.x", "not writable"),
    "full-disk": (lambda here, m: m["full"] / "out.x", "full file system"),
}
FOLDER_COMMANDS = {  # command: arguments around the output folder {out}
    "predict": ["predict", "--model", "net.pt", "--data", "data", "--out", "{out}"],
    "bench": ["bench", "--quick", "--out", "{out}"],
    "data-synth": ["data", "synth", "{out}", "--cases", "1", "--shape", "16,16,16"],
    "export": ["export", "S", "--trial", "0", "--out", "{out}"],
    "save-predictions": ["measure", *TINY_NET, "--patch", "16", "--steps", "1",
                         "--save-predictions", "{out}"],
}
FILE_COMMANDS = {
    "results": ["measure", *TINY_NET, "--patch", "16", "--steps", "1", "--results", "{out}"],
    "save-model": ["measure", *TINY_NET, "--patch", "16", "--steps", "1", "--save-model", "{out}"],
    "snapshot": ["measure", *TINY_NET, "--patch", "16", "--backend", "simulate", "--snapshot", "{out}"],
    "report": ["report", "--results", "file.txt", "--out", "{out}"],
    "bench-docs": ["bench", "--quick", "--update-docs", "--docs", "{out}"],
    "evaluate-csv": ["evaluate", "--ref", ".", "--pred", ".", "--csv", "{out}"],
}


def _place(kind: str, table: dict[str, tuple[object, str]], here: Path,
           mounts: dict[str, Path], suffix: str) -> tuple[str, str]:
    make, words = table[kind]
    key = "read-only" if kind == "read-only" else "full" if kind == "full-disk" else None
    if key is not None and key not in mounts:
        pytest.skip("mounting a tmpfs needs root")
    path = str(make(here, mounts))  # type: ignore[operator]
    if path.endswith(".x"):
        path = path[:-2] + suffix
    return path, words


@pytest.mark.parametrize("kind", list(BAD_PLACES))
@pytest.mark.parametrize("command", list(FOLDER_COMMANDS))
def test_a_bad_output_folder_is_refused_before_any_work(in_tmp: Path, mounts: dict[str, Path],
                                                        command: str, kind: str) -> None:
    (in_tmp / "data").mkdir()
    out, words = _place(kind, BAD_PLACES, in_tmp, mounts, "")
    args = [out if arg == "{out}" else arg for arg in FOLDER_COMMANDS[command]]
    started = time.monotonic()
    assert_one_line_error(args, in_tmp, words)
    assert time.monotonic() - started < 5  # refused before any work


@pytest.mark.parametrize("kind", list(FILE_PLACES))
@pytest.mark.parametrize("command", list(FILE_COMMANDS))
def test_a_bad_output_file_is_refused_before_any_work(in_tmp: Path, mounts: dict[str, Path],
                                                      command: str, kind: str) -> None:
    (in_tmp / "folder").mkdir()
    suffix = {"report": ".html", "snapshot": ".pickle", "save-model": ".pt", "results": ".csv",
              "bench-docs": ".md", "evaluate-csv": ".csv"}[command]
    out, words = _place(kind, FILE_PLACES, in_tmp, mounts, suffix)
    if command == "report" and kind == "dev-full":
        words = "must end in .html"  # checked first; /dev/full.html is refused as "under /dev"
    if kind == "existing-folder":
        out = str(in_tmp / f"folder{suffix}")
        Path(out).mkdir()
    args = [out if arg == "{out}" else arg for arg in FILE_COMMANDS[command]]
    started = time.monotonic()
    assert_one_line_error(args, in_tmp, words)
    assert time.monotonic() - started < 5


# ---- full disks: nothing half-written, nothing lost ---------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 160 KiB file system (tmpfs), unmounted after the test."""
    folder = tmp_path / "small"
    if not _mount_tmpfs(folder, "size=160k"):
        pytest.skip("mounting a tmpfs needs root")
    yield folder
    subprocess.run(["umount", str(folder)], capture_output=True)


def _final_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")]


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if p.is_file()]


def test_data_synth_onto_a_full_disk_leaves_no_half_written_file(in_tmp: Path, small_disk: Path) -> None:
    import nibabel as nib

    code, out, err, exception = invoke(["data", "synth", str(small_disk / "out"), "--cases", "2",
                                        "--shape", "64,64,64"])
    assert exception is None and code == 1, out + err
    assert err.splitlines()[-1].startswith("error: cannot write ") and "No space left" in err, err
    for path in _final_files(small_disk):  # what is there is whole
        assert nib.load(path).get_fdata().shape == (64, 64, 64)
    assert not _temporaries(small_disk)


def test_store_repair_on_a_full_disk_leaves_no_truncated_backup(in_tmp: Path, small_disk: Path) -> None:
    journal = small_disk / "studies.journal"
    journal.write_bytes(b'{"op_code": 99, "worker_id": "w"}\n' * 2500)  # 85 KB: no room for a copy
    before = journal.read_bytes()
    text = assert_one_line_error(["store", "repair", str(journal)], in_tmp, "No space left on device")
    assert "unchanged" in text, text
    assert journal.read_bytes() == before
    assert sorted(p.name for p in small_disk.iterdir()) == ["studies.journal"]  # no .bak, no temp


def test_a_results_append_onto_a_full_disk_leaves_no_half_row(small_disk: Path) -> None:
    from revprof.errors import RevprofError
    from revprof.train.results import append_row

    table = small_disk / "runs.csv"
    append_row({"a": 1, "b": "x"}, table)
    before = table.read_bytes()
    _fill(small_disk)
    with pytest.raises(RevprofError, match="results table"):
        append_row({"a": 2, "b": "y" * 20_000}, table)
    assert table.read_bytes() == before


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from revprof.data import synthesize

    folder = tmp_path_factory.mktemp("tiny-data") / "data"
    synthesize(folder, 3, shape=(32, 32, 32))
    return folder


def test_a_checkpoint_that_does_not_fit_keeps_the_run(in_tmp: Path, small_disk: Path,
                                                      tiny_data: Path) -> None:
    """--save-model onto a disk too small for it after training: one line, no half checkpoint,
    and the run's row is in the results table all the same."""
    args = ["measure", "--levels", "2", "--widths", "64,128", "--patch", "16", "--steps", "1",
            "--data", str(tiny_data), "--val-cases", "1", "--results", "runs.csv",
            "--save-model", str(small_disk / "net.pt")]
    code, out, err, exception = invoke(args)
    assert exception is None and code == 1, out + err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0], err
    assert "appended to runs.csv" in errors[0]
    rows = (in_tmp / "runs.csv").read_text().splitlines()
    assert len(rows) == 2 and ",ok," in rows[1]
    assert not list(small_disk.iterdir())  # neither net.pt nor a temporary file


# ---- checkpoints --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A real checkpoint's content, written by ``save_checkpoint`` and read back."""
    import torch

    from revprof.nn import build_model
    from revprof.spec import spec_from_options
    from revprof.train.run import save_checkpoint

    spec = spec_from_options(levels=2, widths="4,8", groups=2)
    path = tmp_path_factory.mktemp("checkpoint") / "net.pt"
    save_checkpoint(build_model(spec), spec, path, patch=(16, 16, 16), spacing=(1.0, 1.0, 1.0))
    return torch.load(path, weights_only=True)


CHECKPOINTS = [
    pytest.param({"patch": "abc"}, "patch must be three sides", id="patch-text"),
    pytest.param({"patch": 16}, "patch must be three sides", id="patch-number"),
    pytest.param({"patch": [10**6] * 3}, "at most 1024", id="patch-huge"),
    pytest.param({"crop": [-1, 2, 3]}, "crop", id="crop-negative"),
    pytest.param({"spacing": [1e-9] * 3}, "spacing must be a finite number from 0.001 to 100", id="spacing-tiny"),
    pytest.param({"spacing": [float("nan")] * 3}, "spacing must be a finite number", id="spacing-nan"),
    pytest.param({"spacing": [1e300] * 3}, "spacing must be a finite number", id="spacing-huge"),
    pytest.param({"spacing": "x"}, "spacing must be three voxel sizes", id="spacing-text"),
    pytest.param({"precision": "fp64"}, "precision must be one of", id="precision"),
    pytest.param({"spec": "x"}, "spec:", id="spec-text"),
    pytest.param({"spec": {"widths": [4, 10**20]}}, "spec:", id="spec-huge-width"),
    pytest.param({"state_dict": [1, 2]}, "state_dict must map parameter names to tensors", id="state-list"),
    pytest.param({"state_dict": {"w": "x"}}, "state_dict must map", id="state-text"),
    pytest.param({"recipe": {"optimizer": 5}}, "recipe", id="recipe-bad"),
]


@pytest.mark.parametrize(("change", "expect"), CHECKPOINTS)
def test_a_checkpoint_with_a_bad_field_is_one_line(in_tmp: Path, tiny_data: Path,
                                                   checkpoint: dict[str, object],
                                                   change: dict[str, object], expect: str) -> None:
    import torch

    torch.save({**checkpoint, **change}, in_tmp / "bad.pt")
    text = assert_one_line_error(["predict", "--model", "bad.pt", "--data", str(tiny_data), "--out",
                                  "predictions"], in_tmp, expect)
    assert "--model bad.pt" in text


@pytest.mark.parametrize(("content", "expect"), [
    pytest.param(b"", "is not a readable checkpoint", id="empty"),
    pytest.param(b"PK\x03\x04" + b"\0" * 40, "is not a readable checkpoint", id="broken-zip"),
])
def test_an_empty_or_broken_checkpoint_is_one_line(in_tmp: Path, tiny_data: Path, content: bytes,
                                                   expect: str) -> None:
    (in_tmp / "bad.pt").write_bytes(content)
    text = assert_one_line_error(["predict", "--model", "bad.pt", "--data", str(tiny_data), "--out",
                                  "predictions"], in_tmp, expect)
    assert "weights_only" not in text


# ---- killed in the middle of a write -------------------------------------------------------
# The moment a writer is most exposed: its temporary file is written and about to be renamed
# into place. The command runs in a real subprocess whose ``os.fsync`` kills the process
# (SIGKILL: no handler, no cleanup) at the first fsync of a hidden temporary file under
# KILL_UNDER, after cutting that file to half its size: a crash in the middle of the write.
KILL_AT_FSYNC = textwrap.dedent("""
    import os, signal, sys
    real_fsync = os.fsync

    def fsync(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        if (os.path.basename(path).startswith(".") and os.path.isfile(path)
                and path.startswith(os.environ["KILL_UNDER"])):
            os.truncate(path, os.path.getsize(path) // 2)
            os.kill(os.getpid(), signal.SIGKILL)
        real_fsync(fd)

    os.fsync = fsync
    from revprof.cli.app import app
    sys.argv[0] = "revprof"
    app()
""")


def killed_mid_write(args: list[str], cwd: Path, under: Path) -> subprocess.CompletedProcess[str]:
    """``revprof ARGS`` killed at its first write of a temporary file under ``under`` (see
    KILL_AT_FSYNC)."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd), str(ROOT)]),
                   "OMP_NUM_THREADS": "1", "KILL_UNDER": str(under.resolve())}
    result = subprocess.run([sys.executable, "-c", KILL_AT_FSYNC, *args], cwd=cwd,
                            env=environment, text=True, capture_output=True, timeout=300)
    assert result.returncode == -signal.SIGKILL, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def memory_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A journal with a real memory-only sweep of the tiny study (study ``tiny-memory``)."""
    from test_reliability import TINY_STUDY

    folder = tmp_path_factory.mktemp("store")
    (folder / "tiny.toml").write_text(TINY_STUDY)
    code, out, err, exception = invoke(["sweep", str(folder / "tiny.toml"), "--memory-only",
                                        "--storage", str(folder / "s.journal")])
    assert code == 0 and exception is None, out + err
    return folder / "s.journal"


@pytest.mark.slow
@pytest.mark.parametrize("writer", ["data-synth", "predict", "save-model", "export", "report",
                                    "store-repair", "evaluate-csv"])
def test_a_writer_killed_mid_write_leaves_no_file_under_its_final_name(
        tmp_path: Path, tiny_data: Path, checkpoint: dict[str, object], memory_store: Path,
        writer: str) -> None:
    import torch

    torch.save(checkpoint, tmp_path / "net.pt")
    journal = tmp_path / "s.journal"
    journal.write_bytes(memory_store.read_bytes() + b'{"op_code": 99}\n')  # a line to repair
    old_journal = journal.read_bytes()
    commands = {
        "data-synth": (["data", "synth", "out", "--cases", "1", "--shape", "32,32,32"], "out"),
        "predict": (["predict", "--model", "net.pt", "--data", str(tiny_data), "--out", "out"], "out"),
        "save-model": (["measure", *TINY_NET, "--patch", "16", "--steps", "1", "--data",
                        str(tiny_data), "--val-cases", "1", "--save-model", "out/net.pt"], "out"),
        "export": (["export", "tiny-memory", "--trial", "0", "--storage", str(journal), "--out",
                    "out"], "out"),
        "report": (["report", "--study", "tiny-memory", "--storage", str(journal), "--out",
                    "out/r.html"], "out"),
        "store-repair": (["store", "repair", str(journal)], None),
        "evaluate-csv": (["evaluate", "--ref", str(tiny_data), "--pred", str(tiny_data), "--csv",
                          "out/scores.csv", "--no-hd95", "--no-lesions"], "out"),
    }
    args, out = commands[writer]
    (tmp_path / "out").mkdir()
    killed_mid_write(args, tmp_path, tmp_path / out if out is not None else tmp_path)
    if out is not None:
        assert _final_files(tmp_path / out) == [], _final_files(tmp_path / out)
        assert _temporaries(tmp_path / out)  # it was killed in the middle of a write
    else:  # the journal is as it was; a backup, if any, is whole
        assert journal.read_bytes() == old_journal
        for backup in tmp_path.glob("s.journal.*.bak"):
            assert backup.read_bytes() == old_journal


@pytest.mark.slow
@pytest.mark.parametrize("sent", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_data_synth_stopped_mid_write_leaves_only_whole_files(tmp_path: Path, sent: int) -> None:
    """A real signal in the middle of writing 192³ volumes (each takes a good part of a second):
    every file under its final name is whole; after Ctrl-C no temporary file is left."""
    import nibabel as nib

    environment = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "revprof", "data", "synth", "out", "--cases",
                                "3", "--shape", "192,192,192"], cwd=tmp_path, env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not (tmp_path / "out").is_dir() or not _temporaries(tmp_path / "out"):
        assert process.poll() is None and time.monotonic() < deadline, "never wrote a file"
        time.sleep(0.005)
    process.send_signal(sent)
    _, err = process.communicate(timeout=120)
    if sent == signal.SIGINT:
        assert process.returncode == 130, err
        assert not _temporaries(tmp_path / "out")
    for path in _final_files(tmp_path / "out"):
        assert nib.load(path).get_fdata().shape == (192, 192, 192)


# ---- one atomic writer --------------------------------------------------------------------
WRITE_CALLS = ("write_text(", "write_bytes(", "nib.save(", "torch.save(", "np.save", ".to_csv(",
               ".to_parquet(", "shutil.copy", ".savefig(", '"wb")', '"w")', '"ab")', '"a")',
               '"r+b")', "os.write(")
ALLOWED_WRITES = {  # file: calls that are not a file revprof writes for the user, and why
    "revprof/bounds.py": "the one atomic writer itself",
    "revprof/sweep/workers.py": "a worker's own log, appended by the child while it runs",
    "revprof/sweep/storage.py": "cuts a torn last line off a journal, under the journal's lock",
    "revprof/sweep/journal.py": "writes the temporary file replace_file hands it",
    "revprof/train/results.py": "appends one row whole or not at all (cut back on failure)",
}


def test_every_writer_goes_through_the_one_atomic_helper() -> None:
    """A file revprof writes for the user is written by ``bounds.replace_file`` (temporary file,
    fsync, rename): no writer of its own that a kill or a full disk could leave half done."""
    found = []
    for path in sorted((ROOT / "revprof").rglob("*.py")):
        name = str(path.relative_to(ROOT))
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if any(call in code for call in WRITE_CALLS) and "replace_file(" not in code:
                found.append(f"{name}:{number}: {line.strip()}")
    unexpected = [f for f in found if f.split(":")[0] not in ALLOWED_WRITES
                  and "torch.save(checkpoint, buffer)" not in f]  # into memory, then replace_file
    assert unexpected == [], "\n".join(unexpected)


def test_a_killed_runs_staging_folder_is_removed_by_the_next(tmp_path: Path) -> None:
    """Synthetic demo data is made in a staging folder renamed into place; a run killed before
    the rename leaves its folder, which the next run removes (its process is gone), while the
    folder of a run still going is left alone."""
    from revprof.train.demo_data import demo_dataset

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    abandoned = tmp_path / f".staging-{dead}-abc"
    live = tmp_path / f".staging-{os.getpid()}-xyz"
    for folder in (abandoned, live):
        (folder / "BraTS2021_00000").mkdir(parents=True)
    target = demo_dataset(1, (16, 16, 16), root=tmp_path)
    assert target.is_dir() and not abandoned.exists() and live.exists()
