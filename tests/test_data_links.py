"""Datasets assembled from symbolic links (issue 26): links to case folders and to files are
followed by discovery, ``data check``, training and ``predict``; a link loop is one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from data_helpers import label_map, make_old_case
from revprof.cli.app import app
from revprof.data import discover
from revprof.errors import RevprofError

runner = CliRunner()
SHAPE = (16, 16, 16)
IDS = ("BraTS2021_00001", "BraTS2021_00002", "BraTS2021_00003")


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """Three real case folders in one place, which the tests link to."""
    for i, case_id in enumerate(IDS):
        make_old_case(tmp_path / "store", case_id, label_map([1, 2, 4], SHAPE), shape=SHAPE, seed=i)
    return tmp_path / "store"


def _linked_split(store: Path, split: Path) -> Path:
    """A split folder of links to case folders (the usual way to assemble one)."""
    split.mkdir()
    for case_id in IDS:
        os.symlink(store / case_id, split / case_id)
    return split


def _linked_files(store: Path, split: Path) -> Path:
    """Case folders of links to the files."""
    for case_id in IDS:
        (split / case_id).mkdir(parents=True)
        for path in (store / case_id).iterdir():
            os.symlink(path, split / case_id / path.name)
    return split


@pytest.mark.parametrize("assemble", [_linked_split, _linked_files], ids=["folders", "files"])
def test_discovery_follows_links(store: Path, tmp_path: Path, assemble) -> None:
    split = assemble(store, tmp_path / "split")
    index = discover(split)
    assert [c.case_id for c in index] == list(IDS) and not index.problems
    assert all(c.seg is not None and c.seg.parent == split / c.case_id for c in index)


def test_data_check_reads_a_linked_split(store: Path, tmp_path: Path) -> None:
    split = _linked_split(store, tmp_path / "split")
    result = runner.invoke(app, ["data", "check", str(split)])
    assert result.exit_code == 0, result.output
    assert "brats2021 (3)" in result.output and "16x16x16 (3)" in result.output


def test_two_links_to_one_case_read_it_once(store: Path, tmp_path: Path) -> None:
    split = _linked_split(store, tmp_path / "split")
    os.symlink(store / IDS[0], split / "again")
    index = discover(split)
    assert [c.case_id for c in index] == list(IDS)
    (warning,) = index.problems
    assert warning.severity == "warning" and "the same folder as" in warning.message


@pytest.mark.parametrize("target", ["..", "."], ids=["parent", "itself"])
def test_a_link_loop_is_one_line(store: Path, tmp_path: Path, target: str) -> None:
    split = _linked_split(store, tmp_path / "split")
    os.symlink(target, split / "loop")
    with pytest.raises(RevprofError, match=f"link loop: {split / 'loop'}"):
        discover(split)
    result = runner.invoke(app, ["data", "check", str(split)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip() and "checking" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: link loop"), result.output


def test_broken_and_looping_file_links_are_named(store: Path, tmp_path: Path) -> None:
    split = _linked_split(store, tmp_path / "split")
    os.symlink(tmp_path / "nowhere", split / "BraTS2021_00009")
    os.symlink("x_t1.nii.gz", split / "x_flair.nii.gz")
    os.symlink("x_flair.nii.gz", split / "x_t1.nii.gz")
    index = discover(split)
    assert [c.case_id for c in index] == list(IDS)
    messages = {p.path.name: p.message for p in index.problems}
    assert "a broken link" in messages["BraTS2021_00009"]
    assert "a link loop" in messages["x_flair.nii.gz"] and "a link loop" in messages["x_t1.nii.gz"]


def test_training_prepares_a_linked_split(store: Path, tmp_path: Path) -> None:
    from revprof.train import TrainSettings
    from revprof.train.run import prepare_data

    split = _linked_split(store, tmp_path / "split")
    data = prepare_data(TrainSettings(data=split, patch=(8, 8, 8), val_cases=1, device="cpu"),
                        tmp_path / "cache")
    assert (len(data.train), len(data.validation)) == (2, 1)
    assert sorted(data.cases) == list(IDS) and all(p.regions.any() for p in data.train)
