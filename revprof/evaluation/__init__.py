"""BraTS-style evaluation: Dice, HD95, lesion-wise scores, pairing and folder evaluation.

:func:`revprof.evaluation.dice.dice_score` is the one Dice implementation in revprof; the training
loop imports it too.
"""

from revprof.evaluation.dice import dice_per_case, dice_score, region_dice
from revprof.evaluation.evaluate import (
    CaseResult,
    EvaluationResult,
    ScoringOptions,
    detect_convention,
    evaluate,
    scoring_options,
)
from revprof.evaluation.hausdorff import HD95_EMPTY_PENALTY, hd95, region_hd95
from revprof.evaluation.lesions import LesionRules, LesionScores, lesion_rules, lesion_scores
from revprof.evaluation.pairing import CasePair, Pairing, case_key, pair_files

__all__ = [
    "HD95_EMPTY_PENALTY",
    "CasePair",
    "CaseResult",
    "EvaluationResult",
    "LesionRules",
    "LesionScores",
    "Pairing",
    "ScoringOptions",
    "case_key",
    "detect_convention",
    "dice_per_case",
    "dice_score",
    "evaluate",
    "hd95",
    "lesion_rules",
    "lesion_scores",
    "pair_files",
    "region_dice",
    "region_hd95",
    "scoring_options",
]
