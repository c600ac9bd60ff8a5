"""Dice: hand-computed values on crafted masks, the BraTS empty rules, every label convention."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from revprof.data.conventions import CONVENTIONS, get_convention
from revprof.errors import RevprofError
from revprof.evaluation.dice import dice_from_counts, dice_per_case, dice_score, region_dice


def _mask(shape: tuple[int, ...], *voxels: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(shape, dtype=bool)
    for v in voxels:
        out[v] = True
    return out


def test_dice_2x2x2_known_counts() -> None:
    pred = _mask((2, 2, 2), (0, 0, 0), (0, 0, 1), (1, 1, 1))  # 3 voxels
    ref = _mask((2, 2, 2), (0, 0, 0), (1, 0, 0))  # 2 voxels, 1 shared
    assert dice_score(pred, ref) == pytest.approx(2 * 1 / (3 + 2))
    assert dice_score(pred, pred) == 1.0
    full = np.ones((2, 2, 2), dtype=bool)
    assert dice_score(full, ref) == pytest.approx(2 * 2 / (8 + 2))


def test_empty_rules() -> None:
    empty = np.zeros((2, 2, 2), dtype=bool)
    some = _mask((2, 2, 2), (1, 1, 1))
    assert dice_score(empty, empty) == 1.0
    assert dice_score(some, empty) == 0.0  # empty reference, non-empty prediction
    assert dice_score(empty, some) == 0.0  # missed region
    assert dice_from_counts(0, 0, 0) == 1.0


def test_torch_and_mixed_inputs_give_the_same_value() -> None:
    pred = _mask((2, 2, 2), (0, 0, 0), (0, 0, 1), (1, 1, 1))
    ref = _mask((2, 2, 2), (0, 0, 0), (1, 0, 0))
    expected = 0.4
    assert dice_score(torch.from_numpy(pred), torch.from_numpy(ref)) == pytest.approx(expected)
    assert dice_score(torch.from_numpy(pred), ref) == pytest.approx(expected)
    probs = torch.tensor(pred, dtype=torch.float32) * 0.9
    assert dice_score(probs > 0.5, torch.from_numpy(ref)) == pytest.approx(expected)
    # integer masks: non-zero is foreground
    assert dice_score(pred.astype(np.uint8), ref.astype(np.int64)) == pytest.approx(expected)


def test_float_and_shape_errors() -> None:
    with pytest.raises(RevprofError, match="threshold"):
        dice_score(np.zeros((2, 2, 2), dtype=np.float32), np.zeros((2, 2, 2), dtype=bool))
    with pytest.raises(RevprofError, match="threshold"):
        dice_score(torch.rand(2, 2, 2), torch.zeros(2, 2, 2, dtype=torch.bool))
    with pytest.raises(RevprofError, match="shape"):
        dice_score(np.zeros((2, 2, 2), dtype=bool), np.zeros((2, 2, 3), dtype=bool))
    with pytest.raises(RevprofError, match=r"\(3, D, H, W\)"):
        region_dice(np.zeros((2, 2, 2, 2), dtype=bool), np.zeros((2, 2, 2, 2), dtype=bool))


def test_region_dice_batched_is_the_mean_of_per_case_dice() -> None:
    ref = np.zeros((2, 3, 2, 2, 2), dtype=bool)
    pred = np.zeros_like(ref)
    ref[0, 0, 0, 0, 0] = pred[0, 0, 0, 0, 0] = True  # case 0 WT: 1.0
    ref[1, 0, 1, 1, 1] = True  # case 1 WT: missed → 0.0
    pred[1, 1, 0, 0, 0] = True  # case 1 TC: false positive on empty ref → 0.0; case 0 TC empty → 1
    per_case = dice_per_case(pred, ref)
    np.testing.assert_allclose(per_case, [[1.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
    assert region_dice(pred, ref) == {"wt": 0.5, "tc": 0.5, "et": 1.0}
    assert region_dice(torch.from_numpy(pred), torch.from_numpy(ref)) == {"wt": 0.5, "tc": 0.5, "et": 1.0}
    assert region_dice(pred[0], ref[0]) == {"wt": 1.0, "tc": 1.0, "et": 1.0}


# Label maps on a (1, 1, N) line; expected per-region Dice computed by hand from the convention's
# region definitions (docstring of revprof.data.conventions).
CASES = [
    # brats2021: 4 counts for WT, TC, ET; 2 only for WT; 1 for WT and TC.
    # WT ref {0,1,2,3} pred {0,1,2,5} → 2·3/8; TC ref {0,1,3} pred {0,5} → 2·1/5; ET ref {0,1} pred {0} → 2/3
    ("brats2021", [4, 4, 2, 1, 0, 0], [4, 2, 2, 0, 0, 1], {"wt": 0.75, "tc": 0.4, "et": 2 / 3}),
    # brats2021 without enhancing tumour: ET empty on both sides → 1.
    # WT ref {0,1} pred {0,1} → 1; TC ref {0} pred {0,1} → 2/3
    ("brats2021", [1, 2, 0], [1, 1, 0], {"wt": 1.0, "tc": 2 / 3, "et": 1.0}),
    # brats2023: label 2 (SNFH) is WT only. WT ref {0,1,2} pred {0,2,3} → 2/3;
    # TC (1,3) ref {2} pred {2,3} → 2/3; ET (3) ref {2} pred {2} → 1
    ("brats2023", [2, 2, 3, 0], [2, 0, 3, 1], {"wt": 2 / 3, "tc": 2 / 3, "et": 1.0}),
    # msd: the same maps, but label 2 (non-enhancing) is tumour core: TC ref {0,1,2} pred {0,2} → 4/5
    ("msd", [2, 2, 3, 0], [2, 0, 3, 1], {"wt": 2 / 3, "tc": 0.8, "et": 1.0}),
    # brats2024: resection cavity (4) is in no region, so the extra 4 changes nothing
    ("brats2024", [2, 2, 3, 0, 0], [2, 0, 3, 1, 4], {"wt": 2 / 3, "tc": 2 / 3, "et": 1.0}),
    # brats2024: a prediction of only resection cavity where the reference has none → all empty → 1
    ("brats2024", [0, 0, 4], [4, 4, 0], {"wt": 1.0, "tc": 1.0, "et": 1.0}),
    # empty reference, tumour predicted → 0 in every region the prediction touches
    ("brats2023", [0, 0, 0], [3, 0, 0], {"wt": 0.0, "tc": 0.0, "et": 0.0}),
    ("msd", [0, 0, 0], [1, 0, 0], {"wt": 0.0, "tc": 1.0, "et": 1.0}),
]


@pytest.mark.parametrize(("convention", "ref", "pred", "expected"), CASES)
def test_region_dice_per_convention(convention: str, ref: list[int], pred: list[int],
                                    expected: dict[str, float]) -> None:
    conv = get_convention(convention)
    ref_map = np.array(ref, dtype=np.uint8).reshape(1, 1, -1)
    pred_map = np.array(pred, dtype=np.uint8).reshape(1, 1, -1)
    got = region_dice(conv.region_masks(pred_map), conv.region_masks(ref_map))
    assert got == pytest.approx(expected)


def test_every_convention_is_covered() -> None:
    assert {c for c, *_ in CASES} == set(CONVENTIONS)
