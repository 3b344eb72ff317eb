"""How step 3-1 ranks candidates by a score of its table, torch-free: step 3-1, the report and the selection
benchmark rank the same way.

ModelDiff's score is a distance (smaller = more alike); the scores reported beside it (LogME, LEEP, linear
CKA) are larger-is-better. `ranking_values` turns any of them into a value where smaller ranks first under
the "similar" rule, so one rule serves every score. Step 3-1 records, per target, the score and rule its
selection was ranked by beside its result CSV, so the figures judge a selection by the score that made it.
"""
from pathlib import Path

from utils.errors import UserError
from utils.records import read_json_record

SELECT_RULES = ("similar", "dissimilar")
# score name -> (its column in pickaback_<cfg>_table.csv, whether larger values are better). ModelDiff ranks by the
# distance of the DDVs of Euclidean distances, as the original ("euc-cos"); modeldiff_cos by that of the DDVs of
# cosine distances, which the original printed beside it ("cos-cos").
# modeldiff_untrained ranks by ModelDiff's distance minus that of the candidate's untrained twin (step 3-1's floor).
SCORES = {"modeldiff": ("ddv_euc", False), "modeldiff_cos": ("ddv_cos", False), "logme": ("logme", True),
          "leep": ("leep", True), "cka": ("cka", True), "modeldiff_untrained": ("ddv_euc_over_untrained", False)}
# What step 3-1 ranks by unless told otherwise: the paper's ModelDiff. LEEP was measured as the default and not
# adopted: it made a cross-modal hub on emoji (docs/decisions.md).
DEFAULT_SCORE = "modeldiff"


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


# How a target without a record was ranked: step 3-1's defaults before it recorded them, over every pair of its table.
DEFAULT_RANKING = {"score": "modeldiff", "select": "similar", "candidates": None}


def rankings_json(result_csv):
    """The result CSV's sidecar: "<target id>" -> {"score", "select", "candidates"}, how that target's row was
    ranked (per target: a target can be re-run with other settings, or against a narrower pool)."""
    return Path(result_csv).with_suffix(".json")


def read_rankings(result_csv):
    """{target id: its ranking record} of the result CSV's sidecar ({} when there is none: an older run)."""
    path = rankings_json(result_csv)
    rankings = {}
    for key, ranking in read_json_record(path).items():
        if not (key.isdigit() and isinstance(ranking, dict) and ranking.get("score") in SCORES
                and ranking.get("select") in SELECT_RULES):
            raise UserError(f"{path} holds no score and rule for target {key!r}; delete it and re-run "
                            f"run_pickaback/find_backbone.sh (it re-ranks the saved distances).")
        rankings[int(key)] = {**DEFAULT_RANKING, **ranking}
    return rankings


def ranked_pairs(values, rankings):
    """The pairs of `values` ({(target id, candidate id): value}) each target was ranked over: its recorded
    candidates (its table may hold rows of a wider earlier pool), every pair of a target without a record."""
    def ranked(target, candidate):
        pool = rankings.get(target, DEFAULT_RANKING)["candidates"]
        return pool is None or candidate in pool
    return {pair: value for pair, value in values.items() if ranked(*pair)}
