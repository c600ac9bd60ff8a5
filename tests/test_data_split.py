"""Deterministic train/validation split by patient."""

from __future__ import annotations

from pathlib import Path

import pytest

from revprof.data import Case, split_by_patient
from revprof.errors import RevprofError


def _cases() -> list[Case]:
    cases = []
    for p in range(10):
        for t in range(3 if p % 3 == 0 else 1):  # patients 0, 3, 6, 9 have three time points
            cid = f"BraTS-GLI-{p:05d}-{t:03d}"
            img = Path(f"/x/{cid}.nii.gz")
            cases.append(Case(cid, f"BraTS-GLI-{p:05d}", "brats2023", (img, img, img, img), None))
    return cases


def test_deterministic_and_by_patient() -> None:
    cases = _cases()
    train, val = split_by_patient(cases, validation=4, seed=7)
    again = split_by_patient(list(reversed(cases)), validation=4, seed=7)
    assert (train, val) == again
    assert len(train) + len(val) == len(cases) and len(val) >= 4
    assert not {c.patient_id for c in train} & {c.patient_id for c in val}
    assert {c.case_id for c in train} | {c.case_id for c in val} == {c.case_id for c in cases}
    others = {tuple(c.case_id for c in split_by_patient(cases, 4, seed=s)[1]) for s in range(10)}
    assert len(others) > 1


def test_fraction() -> None:
    cases = _cases()  # 18 cases
    _, val = split_by_patient(cases, validation=0.2, seed=0)
    assert 4 <= len(val) <= 6
    train, val = split_by_patient(cases, validation=0, seed=0)
    assert val == [] and len(train) == 18


@pytest.mark.parametrize("bad", [18, 30, -1, 1.5, -0.5])
def test_bad_validation(bad) -> None:
    with pytest.raises(RevprofError):
        split_by_patient(_cases(), validation=bad)
