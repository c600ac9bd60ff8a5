"""Deterministic train/validation split by patient."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from revprof.data.layouts import Case
from revprof.errors import RevprofError


def validation_count(total: int, validation: int | float) -> int:
    """Number of validation cases asked for: an integer count, or a fraction in (0, 1).

    Raises:
        RevprofError: negative, a fraction outside (0, 1), or not fewer than ``total``.
    """
    if isinstance(validation, bool):
        raise RevprofError(f"validation must be a case count or a fraction in (0, 1); got {validation!r}")
    if isinstance(validation, float) and not validation.is_integer():
        if not 0.0 < validation < 1.0:
            raise RevprofError(f"validation fraction must lie in (0, 1); got {validation}")
        count = max(1, round(validation * total))
    else:
        count = int(validation)
    if count < 0:
        raise RevprofError(f"validation case count must be >= 0; got {count}")
    if count > 0 and count >= total:
        raise RevprofError(
            f"validation asks for {count} cases, but only {total} are available; "
            f"use fewer than {total}"
        )
    return count


def split_by_patient(
    cases: Sequence[Case], validation: int | float, seed: int = 0
) -> tuple[list[Case], list[Case]]:
    """Split cases into training and validation sets so that no patient is on both sides.

    Patients are shuffled with ``seed`` (independently of the input order) and moved to the
    validation set until it holds at least the requested number of cases; a patient with several
    time points therefore may make the validation set slightly larger than asked.

    Args:
        cases: cases to split (``case_id`` unique).
        validation: number of validation cases, or a fraction in (0, 1).
        seed: shuffling seed.

    Returns:
        ``(train, validation)``, each sorted by case id.
    """
    total = len(cases)
    wanted = validation_count(total, validation)
    by_patient: dict[str, list[Case]] = defaultdict(list)
    for case in cases:
        by_patient[case.patient_id].append(case)
    patients = sorted(by_patient)
    order = np.random.default_rng(seed).permutation(len(patients))
    chosen: set[str] = set()
    count = 0
    for i in order:
        if count >= wanted:
            break
        patient = patients[int(i)]
        chosen.add(patient)
        count += len(by_patient[patient])
    if wanted > 0 and len(chosen) == len(patients):
        raise RevprofError(
            f"validation of {wanted} cases would leave no training case "
            f"({len(patients)} patients in {total} cases)"
        )
    train = sorted((c for c in cases if c.patient_id not in chosen), key=lambda c: c.case_id)
    val = sorted((c for c in cases if c.patient_id in chosen), key=lambda c: c.case_id)
    return train, val


__all__ = ["split_by_patient", "validation_count"]
