"""Selection figures from the transfer control, on hand-made numbers (utils_pickaback/selection_quality.py)."""
import json
import math

import numpy as np
import pytest

from tools import transfer_control
from utils import paths
from utils.dataset_config import get_config
from utils.errors import UserError
from utils_pickaback.selection_quality import (accuracies_by_target, compared_candidates, control_sentences, correlation,
                                               designed_related_pick, expected_best_of, held_out_oracle, hub_figures,
                                               hub_sentence, hub_traits, interval95, noise_regret, noise_sentences,
                                               outdated_control_sentences,
                                               runs_by_target, seed_spread, selection_figures, summarise,
                                               target_figures)

RUNS = {2: 0.60, 3: 0.80, 4: 0.70, "scratch@1.5": 0.50, "untrained": 0.55}
DISTANCES = {2: 0.1, 3: 0.3, 4: 0.2}     # the selector ("similar") prefers 2, then 4, then 3


def test_regret_rank_and_random_pick_of_one_target():
    f = target_figures(1, 2, RUNS, DISTANCES, scratch=0.40, related=3)
    assert (f.oracle, f.oracle_acc, f.selected_acc) == (3, 0.80, 0.60)
    assert f.regret == pytest.approx(0.20)
    assert f.rank == 3 and f.n_candidates == 3
    assert f.random_acc == pytest.approx(0.70)
    assert (f.matched_scratch, f.untrained, f.scratch) == (0.50, 0.55, 0.40)
    assert f.picked_related is False
    assert f.spearman == pytest.approx(-1.0)      # the ranking is exactly backwards


def test_accuracies_apart_by_their_rounding_tie():
    """Target 6 of WordNet: 215 of 600 correct for both, (0.3633 + 0.3533) / 2 and (0.3667 + 0.3500) / 2 rounded."""
    f = target_figures(6, 1, {1: (0.3633 + 0.3533) / 2, 5: (0.3667 + 0.3500) / 2, 2: 0.30}, {1: 0.1, 5: 0.2, 2: 0.3})
    assert (f.oracle, f.regret, f.rank) == (1, 0.0, 1)
    f = target_figures(6, 2, {1: 0.3583, 5: 0.3584, 2: 0.30}, {1: 0.1, 5: 0.2, 2: 0.3})
    assert f.oracle == 5 and f.rank == 3


def test_the_oracle_as_selector_has_no_regret_and_rank_one():
    f = target_figures(1, 3, RUNS, DISTANCES, related=3)
    assert f.regret == 0.0 and f.rank == 1 and f.picked_related is True


def test_a_tie_with_the_best_is_no_regret():
    f = target_figures(1, 2, {2: 0.8, 3: 0.8, 4: 0.1}, DISTANCES)
    assert f.regret == 0.0 and f.rank == 1 and f.oracle == 2


def test_dissimilar_rule_flips_the_score():
    assert target_figures(1, 3, RUNS, DISTANCES, rule="dissimilar").spearman == pytest.approx(1.0)


def test_free_share_correlation_is_over_the_candidates_with_a_share():
    by_share = {2: 0.0, 4: 0.3, 3: 0.9}       # the accuracy of RUNS rises with the share
    assert target_figures(1, 2, RUNS, DISTANCES, free_shares=by_share).free_spearman == pytest.approx(1.0)
    against = {2: 0.9, 4: 0.6, 3: 0.0, 7: 0.5}   # a task the control did not train the target on is left out
    assert target_figures(1, 2, RUNS, DISTANCES, free_shares=against).free_spearman == pytest.approx(-1.0)
    assert target_figures(1, 2, RUNS, DISTANCES).free_spearman is None


def test_a_target_whose_selected_run_is_missing_has_no_figures():
    assert target_figures(1, 5, RUNS, DISTANCES) is None


def test_a_selector_that_ranked_fewer_candidates_is_judged_against_all_the_control_ran():
    f = target_figures(1, 2, RUNS, {2: 0.1, 4: 0.2})          # candidate 3 (the best) never ranked
    assert f.oracle == 3 and f.regret == pytest.approx(0.20) and f.n_candidates == 3


def test_a_target_with_only_its_selected_run_has_no_figures():
    """Step 3-2's run alone (the control not run for this target yet): no regret of 0 by default."""
    assert target_figures(1, 2, {2: 0.60, "untrained": 0.5}, DISTANCES) is None


def test_interval_is_the_student_t_half_width():
    mean, half = interval95([0.1, 0.2, 0.3])
    assert mean == pytest.approx(0.2)
    assert half == pytest.approx(4.302653 * 0.1 / 3 ** 0.5, rel=1e-5)
    assert interval95([0.5]) == (0.5, None)


def test_correlation_is_undefined_for_constant_accuracies():
    assert correlation([1, 2, 3], [0.5, 0.5, 0.5]) == (None, None)
    rho, tau = correlation([1, 2, 3, 4], [0.1, 0.2, 0.3, 0.4])
    assert rho == pytest.approx(1.0) and tau == pytest.approx(1.0)


def test_summary_gains_and_related_picks():
    figures = [target_figures(1, 2, RUNS, DISTANCES, scratch=0.4, related=3),
               target_figures(2, 3, RUNS, DISTANCES, scratch=0.4, related=3)]
    s = summarise(figures)
    assert s["mean_regret"] == pytest.approx(0.10) and s["oracle_picks"] == 1
    assert s["gain_over_random"]["mean"] == pytest.approx(0.0)        # (0.6 - 0.7 + 0.8 - 0.7) / 2
    assert s["gain_over_matched_scratch"]["mean"] == pytest.approx(0.20)
    assert s["gain_over_untrained"]["mean"] == pytest.approx(0.15)
    assert (s["related_picks"], s["related_targets"]) == (1, 2)


def test_a_related_task_step_3_1_did_not_rank_is_no_miss():
    """TASKS without target 1's related task 5: the control's 'designed related' is n/a, as the report's (before,
    'no', and a count of 2 of 3 where the report said 2 of 2)."""
    unranked = {c: d for c, d in DISTANCES.items() if c != 5}
    assert target_figures(1, 2, RUNS, unranked, related=5).picked_related is None
    assert target_figures(1, 2, RUNS, {**unranked, 5: 0.9}, related=5).picked_related is False


def test_designed_related_pick_counts_only_where_the_related_task_was_a_candidate():
    demo, cifar = get_config("demo"), get_config("cifar100")
    assert designed_related_pick(demo, 1, 2, [2, 3]) is True            # shapes_clean's related task: shapes_noisy
    assert designed_related_pick(demo, 1, 3, [2, 3]) is False
    assert designed_related_pick(demo, 1, 3, [3, 4]) is None            # not compared: no right answer to miss
    assert designed_related_pick(cifar, 3, 5, [5]) is None               # the config designs no relations


def test_candidates_are_the_tables_pairs_else_every_other_task():
    demo = get_config("demo")
    assert compared_candidates(demo, {(1, 3): 0.2, (1, 2): 0.1, (7, 8): 0.3}, 1) == [2, 3]
    assert compared_candidates(demo, {}, 1) == list(range(2, 13))


def control_row(target, backbone, test_accuracy, seed):
    return {"target_id": str(target), "backbone": str(backbone), "width": "1", "val_accuracy": "0.5",
            "test_accuracy": f"{test_accuracy:.4f}", "seed": str(seed)}


def test_a_run_repeated_with_other_training_seeds_counts_as_the_mean_of_its_seeds():
    rows = [control_row(1, 2, 0.90, 2), control_row(1, 2, 0.80, 3), control_row(1, 2, 0.70, 4),
            control_row(1, 3, 0.70, 2), control_row(1, "untrained", 0.60, 2)]
    assert accuracies_by_target(runs_by_target(rows, "test")) == \
        {1: {2: pytest.approx(0.80), 3: 0.70, "untrained": 0.60}}
    spread = seed_spread(runs_by_target(rows, "test"))
    assert (spread["runs"], spread["seeds"]) == (1, 3) and spread["sd"] == pytest.approx(0.10)
    assert seed_spread(runs_by_target(rows[3:], "test")) == {"runs": 0, "seeds": 1, "sd": None}


def test_the_spread_is_the_root_mean_square_of_the_runs_standard_deviations():
    rows = [control_row(1, 2, 0.90, 2), control_row(1, 2, 0.80, 3),       # sd 0.0707
            control_row(1, 3, 0.70, 2), control_row(1, 3, 0.70, 3)]       # sd 0
    assert seed_spread(runs_by_target(rows, "test"))["sd"] == pytest.approx((0.005 / 2) ** 0.5)


def test_the_best_of_k_equal_draws_lies_where_order_statistics_put_it():
    assert expected_best_of(1) == 0.0
    assert expected_best_of(2) == pytest.approx(1 / math.sqrt(math.pi))          # E[max(Z1, Z2)]
    assert expected_best_of(3) == pytest.approx(1.5 / math.sqrt(math.pi))
    assert expected_best_of(7) == pytest.approx(1.352, abs=1e-3)


def test_equally_good_candidates_show_the_noise_regret_on_average():
    """Every candidate of 400 targets equally good, each run's accuracy drawn with sd 0.02 at 2 seeds: the mean
    regret of a fixed pick is the noise floor the control reports for them."""
    rng = np.random.default_rng(0)
    figures, rows = [], []
    for target in range(1, 401):
        for candidate in range(2, 9):
            rows += [control_row(target, candidate, 0.7 + rng.normal(0, 0.02), seed) for seed in (2, 3)]
    runs = accuracies_by_target(runs_by_target(rows, "test"))
    figures = [target_figures(t, 2, runs[t], {c: 0.1 for c in range(2, 9)}) for t in runs]
    spread = seed_spread(runs_by_target(rows, "test"))
    assert spread["sd"] == pytest.approx(0.02, rel=0.05)
    floor = noise_regret(runs_by_target(rows, "test"), figures)
    assert floor == pytest.approx(0.02 / math.sqrt(2) * expected_best_of(7), rel=0.05)
    assert summarise(figures)["mean_regret"] == pytest.approx(floor, rel=0.1)
    assert noise_regret(runs_by_target(rows[::2], "test"), figures) is None     # one seed per run: not measured
    # a target whose every run repeats exactly (say all learn it perfectly) adds a floor of 0
    rows += [control_row(401, c, 1.0, seed) for c in range(2, 9) for seed in (2, 3)]
    perfect = target_figures(401, 2, {c: 1.0 for c in range(2, 9)}, {c: 0.1 for c in range(2, 9)})
    assert noise_regret(runs_by_target(rows, "test"), figures + [perfect]) == pytest.approx(floor * 400 / 401)
    said = noise_sentences({"noise_regret": floor, "seed_spread": spread, "held_out_oracle": None})
    assert len(said) == 1 and f"mean regret of about {floor:.4f}" in said[0]


def test_the_held_out_oracle_is_picked_at_one_seed_and_judged_at_the_other():
    """Target 1: candidate 3 is best at seed 2, candidate 4 at seed 3. Picked at 2, judged at 3: 3's 0.70 against
    the mean 0.70 there; picked at 3, judged at 2: 4's 0.60 against the mean 0.70 there. Target 2 has one seed."""
    accuracy = {2: (0.60, 0.60), 3: (0.90, 0.70), 4: (0.60, 0.80)}     # candidate: (seed 2, seed 3)
    rows = [control_row(1, c, acc, seed) for c, accs in accuracy.items() for seed, acc in zip((2, 3), accs)]
    rows += [control_row(1, "untrained", 0.99, 2), control_row(1, "untrained", 0.99, 3)]   # not a candidate
    rows += [control_row(2, c, 0.5, 2) for c in (1, 3)]
    runs = accuracies_by_target(runs_by_target(rows, "test"))
    figures = [target_figures(1, 2, runs[1], {2: 0.1, 3: 0.2, 4: 0.3}), target_figures(2, 1, runs[2], {1: 0.1, 3: 0.2})]
    held_out = held_out_oracle(runs_by_target(rows, "test"), figures)
    assert held_out["targets"] == {1: pytest.approx(((0.70 - 0.70) + (0.60 - 0.70)) / 2)}
    assert held_out["mean"] == pytest.approx(-0.05) and held_out["ci95"] is None
    assert held_out_oracle(runs_by_target(rows[::2], "test"), figures) is None


# ------------------------------------------------------------------ the score step 3-1 ranked by (its record)
def write_step_3_1_and_control(root, ranking=None, name="demo", picked=4):
    """Target 1 of `name`, candidates 2-4 ranked by step 3-1 and 5 only in its table (an earlier, wider pool): the
    control's accuracy rises 2 < 3 < 4 < 5; ddv_euc says the opposite (2 closest), logme agrees on 2-4."""
    (root / f"pickaback_{name}_result.csv").write_text(f"target_id,task_id\n1,{picked}\n")
    if ranking is not None:
        (root / f"pickaback_{name}_result.json").write_text(json.dumps({"1": ranking}))
    table = {2: (0.1, 1.0), 3: (0.2, 2.0), 4: (0.3, 3.0), 5: (0.4, 0.0)}      # candidate: (ddv_euc, logme)
    (root / f"pickaback_{name}_table.csv").write_text("target_id,task_id,ddv_cos,ddv_euc,compared_as,logme,leep,cka\n" +
                                                    "".join(f"1,{c},0.5,{d},own adapter,{m},0,0\n"
                                                            for c, (d, m) in table.items()))
    accuracy = {2: 0.6, 3: 0.7, 4: 0.8, 5: 0.9}
    (root / f"pickaback_{name}_transfer.csv").write_text("target_id,backbone,width,val_accuracy,test_accuracy,seed\n" +
                                                       "".join(f"1,{c},1,0.5,{a},2\n" for c, a in accuracy.items()))


def test_the_correlation_is_of_the_score_and_rule_step_3_1_ranked_by(tmp_path, monkeypatch):
    monkeypatch.setenv("MMPAB_OUTPUT_ROOT", str(tmp_path))
    write_step_3_1_and_control(tmp_path, {"score": "logme", "select": "similar", "candidates": [2, 3, 4]})
    figures, summary = selection_figures(get_config("demo"), "perceiver_io")
    assert figures[0].spearman == pytest.approx(1.0) and summary["spearman"] == pytest.approx(1.0)
    assert figures[0].n_candidates == 4 and figures[0].oracle == 5    # judged against every candidate the control ran

    write_step_3_1_and_control(tmp_path, {"score": "logme", "select": "dissimilar", "candidates": [2, 3, 4]})
    assert selection_figures(get_config("demo"), "perceiver_io")[0][0].spearman == pytest.approx(-1.0)


def test_a_run_without_the_record_is_judged_by_modeldiff_similar(tmp_path, monkeypatch):
    monkeypatch.setenv("MMPAB_OUTPUT_ROOT", str(tmp_path))
    write_step_3_1_and_control(tmp_path)
    assert selection_figures(get_config("demo"), "perceiver_io")[0][0].spearman == pytest.approx(-1.0)


def test_an_unreadable_ranking_record_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("MMPAB_OUTPUT_ROOT", str(tmp_path))
    write_step_3_1_and_control(tmp_path, {"score": "distance"})
    with pytest.raises(UserError, match="holds no score and rule for target '1'; delete it and re-run"):
        selection_figures(get_config("demo"), "perceiver_io")


def test_a_backbone_picked_for_most_of_a_modalitys_targets_is_judged_by_the_control():
    """Demo image targets 1-6: 1, 2 and 3 pick backbone 6 (3 of 6 is not more than half), then 4 picks it too."""
    cfg = get_config("demo")
    accuracies = {t: {c: 0.5 + 0.01 * c + (0.2 if c == 12 - t else 0.0) for c in range(1, 13) if c != t}
                  for t in range(1, 13)}     # target t's best backbone is 12 - t, then the higher ids

    def figures(picks):
        return [target_figures(t, b, accuracies[t], {}) for t, b in picks.items()]
    rest = {5: 1, 6: 1, 7: 8, 8: 7}
    assert hub_figures(cfg, figures({1: 6, 2: 6, 3: 6, 4: 5, **rest}), {}) == []
    hubs = hub_figures(cfg, figures({1: 6, 2: 6, 3: 6, 4: 6, **rest}), {})     # the best only for target 6 (12 - 6)
    assert [(h["backbone"], h["modality"], h["targets"], h["of"], h["best_for"]) for h in hubs] == \
        [(6, "image", [1, 2, 3, 4], 6, 0)]
    regrets = [0.5 + 0.01 * (12 - t) + 0.2 - (0.5 + 0.06) for t in (1, 2, 3, 4)]
    assert hubs[0]["mean_regret"] == pytest.approx(sum(regrets) / 4)
    assert "the best for 0 of them" in hub_sentence(cfg, hubs[0]) and "a hub" in hub_sentence(cfg, hubs[0])
    best = {**{t: 12 - t for t in range(1, 6)}, 6: 1}                      # each picks another: no hub
    assert hub_figures(cfg, figures({**best, 7: 8, 8: 7}), {}) == []
    accuracies = {t: {**runs, 5: 0.99} for t, runs in accuracies.items() if t != 5}
    hubs = hub_figures(cfg, figures({1: 5, 2: 5, 3: 5, 4: 5, 6: 1}), {})    # a backbone best for all who picked it
    assert hubs[0]["best_for"] == 4 and "the best backbone for each of them" in hub_sentence(cfg, hubs[0])


def test_a_hub_names_what_it_shares_with_the_hubs_measured_on_real_data():
    """Backbone 7 (text) picked for image targets 1-4: compared through their adapters; named as weak only when its
    own validation accuracy is below more than half of the other tasks'."""
    cfg = get_config("demo")
    shared = {"backbone": 7, "modality": "image", "targets": [1, 2, 3, 4], "of": 6}
    names = [t.name for t in cfg.tasks]
    weak = {name: 0.9 for name in names} | {names[6]: 0.35}
    assert hub_traits(cfg, shared, weak) == ["it is a text model, compared through the targets' own adapters",
                                             "its own task's validation accuracy (0.350) is below 11 of the other "
                                             "11 tasks'"]
    middling = {name: 0.3 + 0.05 * i for i, name in enumerate(names)}      # task 7: 0.60, below 5 of the other 11
    assert hub_traits(cfg, shared, middling) == ["it is a text model, compared through the targets' own adapters"]
    assert hub_traits(cfg, {**shared, "backbone": 6}, weak | {names[5]: 0.35}) == [
        "its own task's validation accuracy (0.350) is below 10 of the other 11 tasks'"]    # 7 is as weak
    assert hub_traits(cfg, {**shared, "backbone": 6}, middling | {names[5]: 0.95}) == []     # its modality, strong
    assert hub_traits(cfg, {**shared, "backbone": 6}, {}) == []                              # no baseline recorded
    accuracies = {t: {c: 0.5 + 0.01 * c for c in range(1, 13) if c != t} for t in range(1, 13)}
    hubs = hub_figures(cfg, [target_figures(t, 7, accuracies[t], {}) for t in (1, 2, 3, 4)], weak)
    assert hubs[0]["traits"] == hub_traits(cfg, shared, weak)
    assert hub_sentence(cfg, hubs[0]).endswith(
        "a hub, close to every target rather than the best for each. Like the hubs measured on real data "
        "(docs/transfer-control.md), it is a text model, compared through the targets' own adapters, and its own "
        "task's validation accuracy (0.350) is below 11 of the other 11 tasks'; there, such candidates looked close "
        "to targets they helped no more than the others did.")


def test_a_score_that_picks_another_backbone_says_its_untrained_twin_is_step_3_1_s(tmp_path, monkeypatch):
    """Step 3-2 trains the untrained twin of step 3-1's pick only (4 here): ModelDiff's pick (2) is compared with it."""
    monkeypatch.setenv("MMPAB_OUTPUT_ROOT", str(tmp_path))
    write_step_3_1_and_control(tmp_path)
    cfg = get_config("demo")
    figures, summary = selection_figures(cfg, "perceiver_io", score="modeldiff")
    assert figures[0].selected == 2 and summary["untrained_of_another_pick"] == [1]
    assert any("For 1 of 1 targets (1) this score picks another backbone" in line
               for line in control_sentences(cfg, summary))
    figures, summary = selection_figures(cfg, "perceiver_io", score="logme")
    assert figures[0].selected == 4 and summary["untrained_of_another_pick"] == []
    assert not any("another backbone" in line for line in control_sentences(cfg, summary))


def test_the_controls_of_an_earlier_pick_do_not_stand_for_the_current_picks(tmp_path, monkeypatch):
    """The control ran when step 3-1 picked 4 (its run ended at width 1: scratch@1, the twin of 4); step 3-1 now
    picks 5, whose run ended at width 2: neither control is of its structure or capacity (before, both were used)."""
    monkeypatch.setenv("MMPAB_OUTPUT_ROOT", str(tmp_path))
    write_step_3_1_and_control(tmp_path, picked=4)
    transfer = tmp_path / "pickaback_demo_transfer.csv"
    transfer.write_text(transfer.read_text() + "1,scratch@1,1,0.5,0.5,2\n1,untrained@4,1,0.5,0.55,2\n")
    figure = selection_figures(get_config("demo"), "perceiver_io")[0][0]
    assert (figure.matched_scratch, figure.untrained) == (0.5, 0.55)
    write_step_3_1_and_control(tmp_path, picked=5)
    transfer.write_text(transfer.read_text().replace("1,5,1,", "1,5,2,")
                        + "1,scratch@1,1,0.5,0.5,2\n1,untrained@4,1,0.5,0.55,2\n")
    figure = selection_figures(get_config("demo"), "perceiver_io")[0][0]
    assert (figure.selected, figure.matched_scratch, figure.untrained) == (5, None, None)


def write_run(cfg, backbone_folder, test_accuracy, **settings):
    """A run of target 1 (step 3-2's or the control's) in `backbone_folder`, as its outcome.json says."""
    folder = paths.target_dir("perceiver_io", "demo", backbone_folder, cfg.task(1).name) / "scratch"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "outcome.json").write_text(json.dumps({"width": 1.0, "val_accuracy": 0.5, "test_accuracy": test_accuracy,
                                                     "settings": {"epochs": 4, "lr": 0.01, **settings}}))


@pytest.mark.parametrize("since", ["step 3-2 trained the pick again", "the same accuracy by another recipe",
                                   "the twin trained again", "a candidate's run of another recipe"])
def test_a_control_that_no_longer_stands_is_left_out(tmp_path, monkeypatch, since):
    """The control ran target 1 (4 epochs); since then a run changed, or stands beside runs of another recipe: its
    figures would set runs that were never trained together against each other (before: regret with exit 0)."""
    monkeypatch.setenv("MMPAB_OUTPUT_ROOT", str(tmp_path))
    write_step_3_1_and_control(tmp_path)
    transfer = tmp_path / "pickaback_demo_transfer.csv"
    transfer.write_text(transfer.read_text() + "1,untrained@4,1,0.5,0.55,2\n")
    cfg = get_config("demo")
    for candidate, accuracy in {2: 0.6, 3: 0.7, 4: 0.8, 5: 0.9}.items():
        write_run(cfg, cfg.task(candidate).name, accuracy)
    write_run(cfg, "untrained", 0.55, untrained_backbone=True)
    figures, summary = selection_figures(cfg, "perceiver_io")
    assert [f.target_id for f in figures] == [1] and summary["outdated_control"] == []      # the control's own runs
    change = {"step 3-2 trained the pick again": (cfg.task(4).name, 0.7533, {}),
              "the same accuracy by another recipe": (cfg.task(4).name, 0.8, {"epochs": 3}),
              "the twin trained again": ("untrained", 0.5, {"untrained_backbone": True}),
              "a candidate's run of another recipe": (cfg.task(2).name, 0.6, {"lr": 0.1})}[since]
    write_run(cfg, change[0], change[1], **change[2])
    figures, summary = selection_figures(cfg, "perceiver_io")
    assert figures == [] and summary["outdated_control"] == [1]
    assert control_sentences(cfg, summary)[0].startswith("The transfer control of target 1 holds runs trained again "
                                                         "since it was collected, or with other settings")


def test_the_control_judges_the_picks_its_archs_step_3_1_made(tmp_path, monkeypatch):
    """Step 3-1's result file is one per config: a pick lenet5's step 3-1 made is not the perceiver's selection."""
    monkeypatch.setenv("MMPAB_OUTPUT_ROOT", str(tmp_path))
    write_step_3_1_and_control(tmp_path, {"score": "modeldiff", "select": "similar", "candidates": [2, 3, 4],
                                          "arch": "lenet5"})
    figures, summary = selection_figures(get_config("demo"), "perceiver_io")
    assert figures == [] and outdated_control_sentences(summary) == [
        "Left out: target 1, whose pick in pickaback_demo_result.csv step 3-1 made with another arch's models since; "
        "run step 3-1 (run_pickaback/find_backbone.sh) with ARCH=perceiver_io to pick again."]    # before: silent
    figures, summary = selection_figures(get_config("demo"), "lenet5")
    assert [f.target_id for f in figures] == [1] and outdated_control_sentences(summary) == []


def test_quality_of_several_configs_pools_their_targets(tmp_path, monkeypatch, capsys):
    """demo picks 4 (0.8: regret 0.1, +0.05 over the mean 0.75), mine picks 5 (0.9: regret 0, +0.15)."""
    monkeypatch.setenv("MMPAB_OUTPUT_ROOT", str(tmp_path))
    mine = tmp_path / "mine.toml"
    mine.write_text('tasks = [' + ", ".join(f'{{name = "t{k}", modality = "text", num_classes = 2}}'
                                            for k in range(1, 6)) + ']\n')
    write_step_3_1_and_control(tmp_path)
    write_step_3_1_and_control(tmp_path, name="mine", picked=5)
    parser = transfer_control.get_args_parser()
    transfer_control.main(parser.parse_args(["quality", "demo", str(mine)]))
    out = capsys.readouterr().out
    pooled = json.loads(out.splitlines()[-1])
    assert pooled["configs"] == ["demo", "mine"] and pooled["pooled"]["targets"] == 2
    assert pooled["pooled"]["mean_regret"] == pytest.approx(0.05)
    assert pooled["pooled"]["gain_over_random"]["mean"] == pytest.approx(0.10)
    assert pooled["per_config"]["mine"]["mean_regret"] == pytest.approx(0.0)
    assert "Pooled over demo, mine (2 targets): mean regret 0.0500;" in out
    with pytest.raises(UserError, match="give one config with it"):
        transfer_control.main(parser.parse_args(["quality", "demo", str(mine), "--score", "cka", "--table", str(mine)]))
    with pytest.raises(UserError, match="--select needs --score"):    # it would change no pick, only signs
        transfer_control.main(parser.parse_args(["quality", "demo", "--select", "dissimilar"]))


def test_a_gain_measured_on_fewer_targets_says_which_it_leaves_out():
    """Step 3-1 re-ran with another score: target 3's untrained twin is of its earlier pick, so it has none; the
    gain over the untrained backbone was over 1 of 2 targets without a word (before)."""
    no_twin = {k: v for k, v in RUNS.items() if k != "untrained"}
    figures = [target_figures(1, 2, RUNS, DISTANCES), target_figures(3, 2, no_twin, DISTANCES)]
    summary = {**summarise(figures), "seed_spread": {"runs": 0}, "noise_regret": None, "held_out_oracle": None,
               "hubs": []}
    assert summary["gain_over_untrained"]["without"] == [3] and summary["gain_over_matched_scratch"]["without"] == []
    lines = control_sentences(get_config("demo"), summary)
    assert "The gain over the untrained backbone leaves out target 3, with no such run." in lines
    assert not any("capacity-matched scratch leaves out" in line for line in lines)
