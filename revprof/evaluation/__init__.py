"""BraTS-style evaluation: Dice, HD95, prediction/reference pairing and folder evaluation.

:func:`revprof.evaluation.dice.dice_score` is the one Dice implementation in revprof; the training
loop imports it too.
"""

from revprof.evaluation.dice import dice_per_case, dice_score, region_dice
from revprof.evaluation.evaluate import CaseResult, EvaluationResult, detect_convention, evaluate
from revprof.evaluation.hausdorff import HD95_EMPTY_PENALTY, hd95, region_hd95
from revprof.evaluation.pairing import CasePair, Pairing, case_key, pair_files

__all__ = [
    "HD95_EMPTY_PENALTY",
    "CasePair",
    "CaseResult",
    "EvaluationResult",
    "Pairing",
    "case_key",
    "detect_convention",
    "dice_per_case",
    "dice_score",
    "evaluate",
    "hd95",
    "pair_files",
    "region_dice",
    "region_hd95",
]
