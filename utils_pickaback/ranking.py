"""How step 3-1 ranks candidates by a score of its table, torch-free: step 3-1, the report and the selection
benchmark rank the same way.

ModelDiff's score is a distance (smaller = more alike); the scores reported beside it (LogME, LEEP, linear
CKA) are larger-is-better. `ranking_values` turns any of them into a value where smaller ranks first under
the "similar" rule, so one rule serves every score.
"""
from utils.errors import UserError

SELECT_RULES = ("similar", "dissimilar")
# score name -> (its column in pickaback_<cfg>_table.csv, whether larger values are better). ModelDiff ranks by the
# distance of the DDVs of Euclidean distances, as the original ("euc-cos"); modeldiff_cos by that of the DDVs of
# cosine distances, which the original printed beside it ("cos-cos").
SCORES = {"modeldiff": ("ddv_euc", False), "modeldiff_cos": ("ddv_cos", False), "logme": ("logme", True),
          "leep": ("leep", True), "cka": ("cka", True)}


def ranking_values(scores, score):
    """{candidate: value, smaller = more similar} from {candidate: the score's own value}."""
    if score not in SCORES:
        raise UserError(f"unknown score {score!r}; choose one of {', '.join(SCORES)}.")
    larger_is_better = SCORES[score][1]
    return {c: -v if larger_is_better else v for c, v in scores.items()}


def rank_candidates(distances, select="similar"):
    """Candidates ordered best first: "similar" = smallest value first, "dissimilar" = largest first.

    "dissimilar" is what the original code does (argmax of a distance). Ties keep the dict's order;
    NaN values always go last.
    """
    if select not in SELECT_RULES:
        raise UserError(f"unknown selection rule {select!r}; choose one of {', '.join(SELECT_RULES)}.")
    numbers = [(name, float(value)) for name, value in distances.items()]
    valid = [(name, value) for name, value in numbers if value == value]
    invalid = [name for name, value in numbers if value != value]
    ordered = sorted(valid, key=lambda item: item[1], reverse=(select == "dissimilar"))
    return [name for name, _ in ordered] + invalid
