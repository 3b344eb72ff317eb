"""Transferability scores: each score's defining properties, checked against independent references."""
import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from scipy.stats import multivariate_normal

from utils.errors import UserError
from utils_pickaback.transferability import leep, linear_cka, logme


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def class_features(labels, dim, noise, seed=0):
    """Features = a random mean per class + Gaussian noise: linearly separable when `noise` is small."""
    g = generator(seed)
    means = torch.randn(int(labels.max()) + 1, dim, generator=g, dtype=torch.float64) * 3
    return means[labels] + noise * torch.randn(labels.shape[0], dim, generator=g, dtype=torch.float64)


def random_orthogonal(dim, seed=0):
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator(seed), dtype=torch.float64))
    return q


# ---------------------------------------------------------------------------------------------------
# LogME, against the closed form written densely (no SVD, no fixed point)

def dense_log_evidence(f, y, alpha, beta):
    """log p(y | F, alpha, beta) / n from the paper's closed form with A = alpha I + beta F'F, solved densely."""
    n, d = f.shape
    a = alpha * np.eye(d) + beta * f.T @ f
    m = beta * np.linalg.solve(a, f.T @ y)
    return (n / 2 * np.log(beta) + d / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi)
            - beta / 2 * np.sum((f @ m - y) ** 2) - alpha / 2 * m @ m - np.linalg.slogdet(a)[1] / 2) / n


def max_dense_log_evidence(f, labels):
    """Mean over classes of max over (alpha, beta) of the dense evidence, by a generic optimiser."""
    best = []
    for c in np.unique(labels):
        y = (labels == c).astype(np.float64)
        runs = [minimize(lambda p: -dense_log_evidence(f, y, *np.exp(p)), start, method="Nelder-Mead",
                         options=dict(xatol=1e-10, fatol=1e-14, maxiter=600)) for start in ([0, 0], [3, -3])]
        best.append(-min(run.fun for run in runs))
    return float(np.mean(best))


def test_dense_reference_is_the_gaussian_marginal_likelihood():
    """The reference itself: y ~ N(0, I / beta + F F' / alpha) once w is integrated out."""
    rng = np.random.default_rng(0)
    f, y = rng.normal(size=(12, 5)), (rng.random(12) < 0.5).astype(np.float64)
    for alpha, beta in [(0.7, 3.1), (20.0, 0.2)]:
        marginal = multivariate_normal(np.zeros(12), np.eye(12) / beta + f @ f.T / alpha).logpdf(y) / 12
        assert dense_log_evidence(f, y, alpha, beta) == pytest.approx(marginal, rel=1e-12)


def test_logme_is_the_maximum_evidence_when_n_exceeds_d():
    labels = torch.randint(0, 3, (60,), generator=generator(1))
    features = class_features(labels, 8, noise=2.0)
    expected = max_dense_log_evidence(features.numpy(), labels.numpy())
    assert logme(features, labels) == pytest.approx(expected, rel=1e-6)


def test_logme_is_near_the_maximum_evidence_when_d_exceeds_n():
    labels = torch.randint(0, 3, (20,), generator=generator(2))
    features = torch.randn(20, 64, generator=generator(3), dtype=torch.float64)
    score = logme(features, labels)
    assert math.isfinite(score)
    assert score == pytest.approx(max_dense_log_evidence(features.numpy(), labels.numpy()), abs=1e-3)


def d_by_d_fixed_point_log_evidence(f, labels):
    """The reference code's d x d route: one eigendecomposition of F'F keeping all d eigenvalues (d - n of them
    zero when d > n), MacKay's fixed point from alpha = beta = 1 run to 1e-10, then the dense evidence at the
    fixed point; mean over classes."""
    n, d = f.shape
    eigenvalues, vectors = np.linalg.eigh(f.T @ f)
    eigenvalues = eigenvalues.clip(min=0)                               # rounding leaves some zeros below 0
    evidences = []
    for c in np.unique(labels):
        y = (labels == c).astype(np.float64)
        projected = vectors.T @ (f.T @ y)
        alpha = beta = 1.0
        for _ in range(20000):
            precision = alpha + beta * eigenvalues                       # the d eigenvalues of A
            m = vectors @ (beta * projected / precision)
            gamma = np.sum(beta * eigenvalues / precision)
            new_alpha, new_beta = gamma / (m @ m), (n - gamma) / np.sum((y - f @ m) ** 2)
            settled = abs(new_alpha / new_beta - alpha / beta) <= 1e-10 * alpha / beta
            alpha, beta = new_alpha, new_beta
            if settled:
                break
        else:
            raise AssertionError(f"class {c}: the fixed point did not settle")
        evidences.append(dense_log_evidence(f, y, alpha, beta))
    return float(np.mean(evidences))


def test_logme_with_more_features_than_samples_is_the_evidence_at_the_fixed_point():
    """d > n with a fixed point inside: log|A| counts each of the d - n zero eigenvalues of F'F as log alpha
    (the reference code's fixed-point branch leaves them out for n < d and adds (d - n) / (2n) log alpha)."""
    labels = torch.randint(0, 4, (100,), generator=generator(14))
    features = class_features(labels, 512, noise=15.0, seed=15)
    expected = d_by_d_fixed_point_log_evidence(features.numpy(), labels.numpy())
    assert logme(features, labels) == pytest.approx(expected, rel=1e-6)


def test_logme_of_separable_features_in_the_paper_profile_is_the_supremum_of_the_evidence():
    """512-d features, 200 probes: y lies in range(F), and the evidence rises towards beta -> inf, where
    y ~ N(0, F F' / alpha); the supremum is that density at its best alpha = n / y'(F F')^-1 y."""
    labels = torch.randint(0, 4, (200,), generator=generator(16))
    features = class_features(labels, 512, noise=1.0, seed=17)
    f, n = features.numpy(), 200
    gram = f @ f.T
    suprema = []
    for c in range(4):
        y = (labels.numpy() == c).astype(np.float64)
        alpha = n / (y @ np.linalg.solve(gram, y))
        suprema.append(multivariate_normal(np.zeros(n), gram / alpha).logpdf(y) / n)
    assert logme(features, labels) == pytest.approx(np.mean(suprema), rel=1e-9)


def test_logme_depends_on_features_only_through_their_gram_matrix():
    """Zero columns (pushing d above n) and rotations leave F F', hence the evidence, unchanged."""
    labels = torch.randint(0, 4, (30,), generator=generator(4))
    features = class_features(labels, 10, noise=1.0)
    padded = torch.cat([features, torch.zeros(30, 50, dtype=torch.float64)], dim=1)
    rotated = features @ random_orthogonal(10)
    assert logme(padded, labels) == pytest.approx(logme(features, labels), rel=1e-9)
    assert logme(rotated, labels) == pytest.approx(logme(features, labels), rel=1e-9)


def test_logme_ranks_separable_features_above_noisier_and_random_ones():
    labels = torch.randint(0, 5, (200,), generator=generator(5))
    separable = logme(class_features(labels, 16, noise=0.1), labels)
    noisy = logme(class_features(labels, 16, noise=3.0), labels)
    random = logme(torch.randn(200, 16, generator=generator(6), dtype=torch.float64), labels)
    assert separable > noisy > random


def test_logme_does_not_depend_on_class_names():
    labels = torch.randint(0, 4, (80,), generator=generator(7))
    features = class_features(labels, 6, noise=1.5).float()     # float32 input is accepted
    renamed = torch.tensor([2, 0, 3, 1])[labels]
    assert logme(features, renamed) == pytest.approx(logme(features, labels), rel=1e-12)
    assert logme(features, labels * 10) == pytest.approx(logme(features, labels), rel=1e-12)  # ids unused


# ---------------------------------------------------------------------------------------------------
# LEEP

def test_leep_small_case_by_hand():
    # joint P(y, z) = [[.4, .1], [.2, .3]], P(z) = [.6, .4]; both samples: sum_z P(y|z) theta_z = 7/12
    theta = torch.tensor([[0.8, 0.2], [0.4, 0.6]], dtype=torch.float64)
    assert leep(theta, torch.tensor([0, 1])) == pytest.approx(math.log(7 / 12), rel=1e-12)


def test_leep_of_a_uniform_source_is_minus_the_label_entropy():
    """theta_z = 1/Z gives P(y | z) = P(y) and LEEP = mean_i log P(y_i) = -H(Y); -log C when balanced."""
    labels = torch.tensor([0, 0, 0, 0, 0, 1, 1, 2])
    uniform = torch.full((8, 7), 1 / 7, dtype=torch.float64)
    prior = torch.tensor([5, 2, 1], dtype=torch.float64) / 8
    assert leep(uniform, labels) == pytest.approx(float((prior * prior.log()).sum()), rel=1e-12)
    balanced = torch.arange(12) % 4
    assert leep(torch.full((12, 7), 1 / 7, dtype=torch.float64), balanced) == pytest.approx(-math.log(4), rel=1e-12)


def test_leep_of_a_source_that_names_the_label_is_zero_whatever_its_class_order():
    labels = torch.randint(0, 5, (50,), generator=generator(8))
    # source class 5 is never predicted: P(z = 5) = 0 must not turn into 0/0
    exact = torch.nn.functional.one_hot(torch.tensor([3, 1, 4, 0, 2])[labels], 6).double()
    assert leep(exact, labels) == pytest.approx(0.0, abs=1e-12)


def test_leep_ranks_an_informative_source_above_a_uniform_one():
    labels = torch.randint(0, 4, (100,), generator=generator(9))
    logits = 3 * torch.nn.functional.one_hot(labels, 6) + torch.randn(100, 6, generator=generator(10))
    informative = leep(logits.softmax(1), labels)
    assert informative > leep(torch.full((100, 6), 1 / 6), labels)
    assert informative < 0


# ---------------------------------------------------------------------------------------------------
# linear CKA, against the kernel (HSIC) form of the paper

def gram_cka(x, y):
    """<HKH, HLH> / (||HKH|| ||HLH||) with linear kernels K = X X', L = Y Y' and H the centring matrix."""
    n = x.shape[0]
    h = np.eye(n) - 1 / n
    k, l = h @ x @ x.T @ h, h @ y @ y.T @ h
    return np.sum(k * l) / (np.linalg.norm(k) * np.linalg.norm(l))


@pytest.fixture
def representations():
    g = generator(11)
    x = torch.randn(40, 12, generator=g, dtype=torch.float64) + 5       # not centred
    y = x @ torch.randn(12, 70, generator=g, dtype=torch.float64) + torch.randn(40, 70, generator=g)
    return x, y


def test_cka_matches_the_kernel_form_and_is_symmetric(representations):
    x, y = representations
    score = linear_cka(x, y)
    assert score == pytest.approx(gram_cka(x.numpy(), y.numpy()), rel=1e-10)
    assert linear_cka(y, x) == pytest.approx(score, rel=1e-12)
    assert 0 < score < 1


def test_cka_of_identical_representations_is_one(representations):
    x, _ = representations
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x.float(), x.float()) == pytest.approx(1.0, abs=1e-12)


def test_cka_is_invariant_to_rotation_scale_and_translation(representations):
    x, y = representations
    score = linear_cka(x, y)
    assert linear_cka(x @ random_orthogonal(12), y) == pytest.approx(score, rel=1e-10)
    assert linear_cka(x, 1e-3 * y) == pytest.approx(score, rel=1e-10)
    assert linear_cka(x - 7, y + torch.linspace(0, 9, 70)) == pytest.approx(score, rel=1e-10)


def test_cka_of_independent_representations_is_near_zero():
    g = generator(12)
    x, y = (torch.randn(5000, 10, generator=g) for _ in range(2))
    assert linear_cka(x, y) < 0.01                   # expected ~ sqrt(d1 d2) / n = 0.002


# ---------------------------------------------------------------------------------------------------
# user errors

FEATURES = torch.randn(6, 3, generator=generator(13))
PROBABILITIES = torch.full((6, 4), 0.25)
LABELS = torch.tensor([0, 1, 2, 0, 1, 2])


@pytest.mark.parametrize("call, message", [
    (lambda: logme(FEATURES[:1], LABELS[:1]), "n >= 2"),
    (lambda: leep(PROBABILITIES[:1], LABELS[:1]), "n >= 2"),
    (lambda: linear_cka(FEATURES[:1], FEATURES[:1]), "n >= 2"),
    (lambda: logme(FEATURES.flatten(), LABELS), "n x d"),
    (lambda: logme(FEATURES, LABELS[:5]), "6 non-negative"),
    (lambda: leep(PROBABILITIES, LABELS[:, None]), "6 non-negative"),
    (lambda: linear_cka(FEATURES, FEATURES[:5]), "same n samples"),
    (lambda: logme(FEATURES, LABELS - 1), "non-negative"),
    (lambda: leep(PROBABILITIES, LABELS - 1), "non-negative"),
    (lambda: logme(FEATURES, LABELS.float()), "integer"),
    (lambda: leep(PROBABILITIES.log(), LABELS), "not logits"),
    (lambda: logme(torch.zeros(6, 3), LABELS), "not all zero"),
    (lambda: linear_cka(FEATURES, torch.ones(6, 2)), "same for every sample"),
])
def test_unusable_inputs_raise_user_error(call, message):
    with pytest.raises(UserError, match=message):
        call()
