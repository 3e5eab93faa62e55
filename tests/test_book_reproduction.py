"""The reproduction chapters' shared helpers (teachdiff.book.reproduction): the words they generate
follow the numbers, and each chapter experiment measures what it says, checked against independent
computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage
from scipy import stats as scipy_stats

from teachdiff.book import experiments
from teachdiff.book import reproduction as book
from teachdiff.evaluation import metrics
from teachdiff.data.synthetic import simulate_pair, simulate_synapse_stack
from teachdiff.evaluation.evaluate import TABLE_METRICS


def _row(method, mae, **extra):
    row = {m: 0.5 for m in TABLE_METRICS}
    row.update(method=method, mae=mae, mae_low=mae - 0.3, mae_high=mae + 0.3, n_images=4, psnr=40 - mae)
    if method != "ddpm-avg":
        row.update(mae_wilcoxon_p=0.125, mae_median_difference=0.1, mae_vs_ddpm_avg="ns")
    row.update(extra)
    return row


def _table(**maes):
    return [_row(method.replace("_", "-"), mae) for method, mae in maes.items()]


@pytest.mark.parametrize("n", [1, 3, 4, 6, 8])
def test_smallest_wilcoxon_p_is_what_scipy_gives_when_every_pair_agrees(n):
    differences = np.arange(1, n + 1, dtype=float)  # all positive, no ties
    assert book.smallest_wilcoxon_p(n) == pytest.approx(scipy_stats.wilcoxon(differences).pvalue)


def test_paired_test_note_says_when_significance_is_out_of_reach():
    assert "cannot reach p < 0.05" in book.paired_test_note(_table(raw=9, ddpm_avg=5, care=4.9))
    assert "cannot reach" not in book.paired_test_note([dict(r, n_images=8) for r in _table(ddpm_avg=5, care=4.9)])


def test_winners_reports_ties_at_the_printed_precision_instead_of_breaking_them():
    table = _table(raw=1.0, care=4.931, rcan=4.934, ddpm_avg=5.2)
    assert book.winners(table, "mae") == ["care", "rcan"]  # 4.93 = 4.93 as printed
    assert book.winners(table, "mae", digits=3) == ["care"]
    table[1]["resolution_ratio"], table[2]["resolution_ratio"], table[3]["resolution_ratio"] = 0.98, 1.02, 1.2
    assert book.winners(table, "resolution_ratio") == ["care", "rcan"]  # both 0.02 from the GT
    table[1]["psnr"], table[2]["psnr"], table[3]["psnr"] = 30.0, 31.0, 20.0
    assert book.winners(table, "psnr") == ["rcan"]  # higher is better


def test_order_change_names_the_moves_and_the_new_leader():
    tables = {"paper": _table(ddpm_avg=5.0, care=4.8, rcan=5.5), "none": _table(ddpm_avg=5.0, care=5.2, rcan=5.5)}
    text = book.order_change(tables)
    assert "CARE from 1 to 2" in text and "DDPM-avg from 2 to 1" in text
    assert "best method changes from CARE to DDPM-avg" in text
    same = book.order_change({"paper": tables["paper"], "none": tables["paper"]})
    assert "The order is the same under `none` as under `paper`" in same


def test_verdict_explains_a_losing_ddpm_only_when_it_loses():
    winning = {"paper": _table(ddpm=6, ddpm_avg=4.5, care=4.8)}
    assert "lowest median MAE under every mode shown" in book.verdict(winning, "quick")
    losing = {"paper": _table(ddpm=6, ddpm_avg=5.0, care=4.8), "none": _table(ddpm=6, ddpm_avg=5.0, care=4.7)}
    text = book.verdict(losing, "quick", ddpm_parameters=1234)
    assert "does not have the lowest median MAE: CARE has under `paper` and `none`" in text
    assert "1,234 parameters" in text and "does not test the paper's claim" in text
    assert "paper preset" in book.verdict(losing, "colab")


def test_paired_markdown_shows_the_interval_and_both_tests():
    text = book.paired_markdown(_table(raw=9.0, ddpm_avg=5.0, care=4.8))
    assert "4.80 [4.50, 5.10]" in text and "Wilcoxon p" in text and "Mood" in text
    assert text.count("\n") == 2 + 3  # header, rule, one line per method


def test_floor_note_names_a_learned_method_below_the_filters():
    assert "every learned method" in book.floor_note(_table(gaussian=8, nlm=7.5, care=5, ddpm_avg=5.5))
    assert book.floor_note(_table(gaussian=8, nlm=7.5, care=5, pix2pix=7.6)).startswith("Pix2pix (7.60) does not")


def test_capture_ladder_follows_one_over_root_k_for_pure_noise():
    rng = np.random.default_rng(0)
    gt = np.full((4, 64, 64), 100.0)
    captures = gt + rng.normal(0, 8.0, size=(16, 4, 64, 64))
    ladder = experiments.capture_ladder(captures, gt)
    for k, mae in ladder.items():  # E|N(0, s^2 / k)| = s sqrt(2 / pi) / sqrt(k)
        assert mae == pytest.approx(8.0 * math.sqrt(2 / math.pi) / math.sqrt(k), rel=0.03)
    with pytest.raises(ValueError, match="needs 32 captures"):
        experiments.capture_ladder(captures, gt, ks=(1, 32))


def test_captures_worth_interpolates_in_log_log():
    ladder = {1: 8.0, 4: 4.0, 16: 2.0}
    assert experiments.captures_worth(ladder, math.sqrt(32)) == pytest.approx(2.0)  # halfway between 1 and 4
    assert experiments.captures_worth(ladder, 4.0) == pytest.approx(4.0)
    assert experiments.captures_worth(ladder, 9.0) == 0.0 and experiments.captures_worth(ladder, 1.0) == math.inf


def test_rescale_maps_are_the_map_that_clip_and_rescale_applies():
    rng = np.random.default_rng(1)
    outputs = {"care": rng.uniform(-10, 90, (3, 32, 32)), "ddpm-avg": rng.uniform(20, 200, (3, 32, 32))}
    reference = metrics.IntensityReference.from_images(rng.uniform(0, 255, (2, 32, 32)))
    for name, (gain, offset) in experiments.rescale_maps(outputs, reference).items():
        expected = metrics.clip_and_rescale(outputs[name], reference, clip_output=False)
        np.testing.assert_allclose(gain * np.clip(outputs[name], 0, 255) + offset, expected, atol=1e-9)


def test_postprocessing_ablation_scores_each_mode_and_undoes_a_known_shift():
    rng = np.random.default_rng(2)
    gt = np.clip(ndimage.gaussian_filter(rng.uniform(0, 255, (3, 48, 48)), (0, 2, 2)) * 3 - 250, 0, 255)
    dim = 0.5 * gt + 10  # a model with the wrong contrast
    moved = np.stack([ndimage.shift(g, (1.0, -0.5), order=3, mode="nearest") for g in gt])
    reference = metrics.IntensityReference.from_images(gt)
    result = {"gt": gt, "reference": reference, "outputs": {"care": dim, "ddpm-avg": moved}}
    rows = {r["method"]: r for r in experiments.postprocessing_ablation(result)}
    plain = np.median([np.abs(d - g).mean() for d, g in zip(dim, gt)])
    assert rows["care"][("none", False)] == pytest.approx(plain)
    assert rows["care"][("paper", False)] < plain  # the map repairs the contrast of CARE ...
    assert rows["ddpm-avg"][("paper", False)] == rows["ddpm-avg"][("none", False)]  # ... not of DDPM-avg
    assert rows["ddpm-avg"][("none", True)] < 0.5 * rows["ddpm-avg"][("none", False)]  # alignment undoes the shift


def test_displacement_penalty_charges_sharp_images_and_not_flat_ones():
    rng = np.random.default_rng(3)
    gt = np.clip(ndimage.gaussian_filter(rng.uniform(0, 255, (2, 64, 64)), (0, 1.5, 1.5)) * 4 - 380, 0, 255)
    flat = np.full_like(gt, gt.mean())
    rows = {(r["method"], r["d"]): r for r in experiments.displacement_penalty({"flat": flat}, gt, displacements=(0, 1, 2))}
    assert rows["gt", 0.0]["mae"] == pytest.approx(0, abs=1e-9)
    assert 0 < rows["gt", 1.0]["mae"] < rows["gt", 2.0]["mae"]
    assert rows["flat", 2.0]["mae"] == pytest.approx(rows["flat", 0.0]["mae"])  # nothing to displace


def test_puncta_readout_finds_each_spot_and_reads_a_uniform_dimming():
    gt = np.zeros((1, 64, 64))
    centres = [(12, 12), (12, 45), (40, 20), (50, 50)]
    for r, c in centres:
        gt[0, r, c] = 200.0
    gt = ndimage.gaussian_filter(gt, (0, 1.2, 1.2)) * 2 * np.pi * 1.2**2
    readout = experiments.puncta_readout({"dim": 0.5 * gt}, gt)
    assert readout["gt"].size == len(centres)
    np.testing.assert_allclose(readout["dim"] / readout["gt"], 0.5)


def test_z_roughness_is_the_mean_step_between_slices():
    assert experiments.z_roughness(np.full((5, 4, 4), 7.0)) == 0
    alternating = np.stack([np.full((4, 4), 10.0 * (z % 2)) for z in range(6)])
    assert experiments.z_roughness(alternating) == pytest.approx(10.0)


def test_the_synapse_stack_is_deterministic_and_its_slices_look_like_the_2d_case():
    stack = simulate_synapse_stack(size=(64, 96), n_slices=10, seed=1)
    assert stack.x.shape == stack.y.shape == (10, 64, 96) and stack.x.dtype == np.uint8
    np.testing.assert_array_equal(stack.x, simulate_synapse_stack(size=(64, 96), n_slices=10, seed=1).x)
    pair = simulate_pair("synapses", 256, seed=1)
    for ours, theirs in ((stack.x, pair.x), (stack.y, pair.y)):  # grey levels like the training data's
        for q in (50, 90, 99):
            assert np.percentile(ours, q) == pytest.approx(np.percentile(theirs, q), rel=0.35), q

    def sharpness(image):  # mean squared lateral gradient of the noise-free image, per unit of signal
        gy, gx = np.gradient(image.astype(float), axis=(-2, -1))
        return float((gy**2 + gx**2).mean() / image.var())

    assert sharpness(stack.expected_y) > sharpness(stack.expected_x)  # Airyscan target sharper than confocal
    with pytest.raises(ValueError, match="n_slices"):
        simulate_synapse_stack(n_slices=1)


@pytest.fixture(scope="module")
def zebrafish_stand_in():
    return book.Chapter.stand_in("zebrafish", "n2v")


def test_test_split_note_counts_what_reproduce_scores(zebrafish_stand_in):
    test_set = zebrafish_stand_in.test_set()
    note = book.test_split_note(zebrafish_stand_in, test_set)
    assert f"has {len(test_set)} patches" in note
    assert f"scores the first {zebrafish_stand_in.cfg.test_images}" in note


def test_synthetic_captures_are_new_noise_on_the_test_fields(zebrafish_stand_in):
    test_set = zebrafish_stand_in.test_set()
    captures, gt = experiments.synthetic_captures(zebrafish_stand_in, [0, 1], 3, test_set=test_set)
    assert captures.shape == (3, 2, *gt.shape[1:])
    first = test_set[0]
    np.testing.assert_allclose(gt[0], (first["y"][0].numpy() + 1) * 127.5, atol=1e-4)
    x0 = (first["x"][0].numpy() + 1) * 127.5
    assert not np.array_equal(captures[0, 0], x0)  # fresh noise ...
    assert abs(captures[:, 0].mean() - x0.mean()) < 0.05 * x0.mean() + 1  # ... on the same field
    assert np.corrcoef(captures[0, 0].ravel(), x0.ravel())[0, 1] > 0.3


def test_delta_note_names_every_difference_from_the_paper(zebrafish_stand_in):
    note = book.delta_note(zebrafish_stand_in)
    for part in ("different data", "quick models", "one seed", "4 test patches", "post-processing",
                 "no re-alignment", "not the reproduction error"):
        assert part in note, part


def test_training_markdown_reads_the_zoo_or_the_preset():
    quick = book.training_markdown("synthetic-zebrafish", ("ddpm",), "quick")
    assert "zoo: `synthetic-zebrafish-ddpm-quick`" in quick
    assert "trained here: the `colab` preset" in book.training_markdown("synthetic-zebrafish", ("care",), "colab")
