"""Label-aware and representation scores for ranking candidate backbones, reported beside ModelDiff.

ModelDiff compares a candidate's decisions with the target model's and never sees the target's labels.
These scores do, or compare representations directly; for all three, higher is better:
* `logme`: LogME (You et al., ICML 2021): how well a Bayesian linear model on the candidate's features
  explains the labels;
* `leep`: LEEP (Nguyen et al., ICML 2020): how well the candidate's own head, relabelled through an
  empirical P(y | z), predicts the labels;
* `linear_cka`: linear CKA (Kornblith et al., ICML 2019): similarity of two representations of the same
  samples.
Inputs are tensors on any device; the arithmetic is float64 (scores of close candidates differ in late
digits), results are Python floats.
"""
import math

import torch

from utils.errors import UserError

LOGME_TOLERANCE = 1e-3        # relative change of lambda = alpha / beta, as the paper's reference code
LOGME_MAX_ITERATIONS = 100    # see logme: lambda may drift without settling, and would overflow
_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def logme(features, labels):
    """LogME of `features` (n x d) for `labels` (n class ids >= 0): mean over classes of the maximum log
    evidence per sample of a Bayesian linear regression of the class's one-hot column y on the features.

    Model: y = F w + noise, w ~ N(0, I / alpha), noise ~ N(0, I / beta). The paper's fixed point
    (alpha = gamma / m'm, beta = (n - gamma) / ||y - F m||^2, m the posterior mean) is written in the thin
    SVD F = U diag(sigma) V' (k = min(n, d) singular values): one decomposition serves every class and
    iteration, and n < d works as d < n. The evidence is exact for any n, d: log|alpha I + beta F'F| counts
    all d eigenvalues, the d - k zero ones too, as the reference code's d x d branch (`_fit_icml`); its default
    `_fit_fixed_point` drops them when n < d (thuml/LogME issue #23), adding (d - k) / (2n) log alpha.
    Ids that never occur are skipped: an all-zero column has no evidence maximum. Scale-dependent: compare
    candidates on features prepared the same way.
    When a class's evidence is largest at a boundary (lambda -> 0: labels fitted exactly, possible when
    n <= d; lambda -> inf: features no better than noise) lambda never settles and the value after
    LOGME_MAX_ITERATIONS is a lower bound that is still rising slowly towards the supremum.
    """
    features = _float64_matrix(features, "features")
    labels = _class_ids(labels, features)
    n = features.shape[0]
    u, sigma, _ = torch.linalg.svd(features, full_matrices=False)
    if sigma[0] == 0:
        raise UserError("LogME needs features that are not all zero.")
    s = sigma.square().unsqueeze(1)                              # k x 1: eigenvalues of F'F, k = min(n, d)
    y = (labels.unsqueeze(1) == labels.unique()).double()        # n x C: one column per class
    z = u.T @ y                                                   # k x C: y's coordinates along each u_i
    outside = (y - u @ z).square().sum(0)                         # y's energy outside range(F)
    z2 = z.square()

    t = torch.ones(y.shape[1], dtype=torch.float64, device=y.device)   # lambda, from alpha = beta = 1
    for _ in range(LOGME_MAX_ITERATIONS):
        gamma, m2, res2 = _posterior(t, s, z2, outside)
        alpha, beta = gamma / m2, (n - gamma) / res2
        converged = bool(((alpha / beta - t).abs() <= LOGME_TOLERANCE * t).all())
        t = alpha / beta
        if converged:
            break
    _, m2, res2 = _posterior(t, s, z2, outside)                 # m and residual of the final alpha, beta
    # d/2 log(alpha) - 1/2 log|alpha I + beta F'F|: the d - k eigenvalues beyond the SVD are 0 and cancel
    log_det_term = -torch.log1p(s / t).sum(0)
    evidence = (n * beta.log() + log_det_term - beta * res2 - alpha * m2 - n * math.log(2 * math.pi)) / 2
    return float((evidence / n).mean())


def _posterior(t, s, z2, outside):
    """gamma, m'm and ||y - F m||^2 per class at lambda = t: they depend on alpha and beta via t only."""
    shrink = s + t
    gamma = (s / shrink).sum(0)
    m2 = (s * z2 / shrink.square()).sum(0)
    res2 = (t.square() * z2 / shrink.square()).sum(0) + outside
    return gamma, m2, res2


def leep(source_probabilities, labels):
    """LEEP of the candidate's head outputs `source_probabilities` (n x Z, rows are softmax outputs) for
    `labels` (n target class ids >= 0): mean_i log sum_z P(y_i | z) theta_z(x_i), with P(y | z) from the
    empirical joint P(y, z) = mean_i theta_z(x_i) [y_i = y].
    """
    theta = _float64_matrix(source_probabilities, "source_probabilities")
    labels = _class_ids(labels, theta)
    if (theta < 0).any() or not torch.allclose(theta.sum(1), torch.ones_like(theta[:, 0])):
        raise UserError("source_probabilities must be non-negative rows summing to 1: softmax outputs, not logits.")
    joint = torch.zeros(int(labels.max()) + 1, theta.shape[1], dtype=torch.float64, device=theta.device)
    joint.index_add_(0, labels, theta / theta.shape[0])
    # a source class z that no sample puts mass on contributes nothing; avoid its 0/0
    conditional = joint / joint.sum(0).clamp_min(torch.finfo(torch.float64).tiny)
    expected = (theta * conditional[labels]).sum(1)              # sum_z P(y_i | z) theta_z(x_i)
    return float(expected.log().mean())


def linear_cka(x, y):
    """Linear CKA between two representations (n x d1, n x d2) of the same n samples, in [0, 1]:
    ||Yc'Xc||_F^2 / (||Xc'Xc||_F ||Yc'Yc||_F) with Xc, Yc centred per feature. 1 for identical inputs;
    invariant to orthogonal transforms, isotropic scaling and translation of either representation.
    """
    x, y = _float64_matrix(x, "x"), _float64_matrix(y, "y")
    if x.shape[0] != y.shape[0]:
        raise UserError(f"linear CKA needs the same n samples in x and y; got {x.shape[0]} and {y.shape[0]} rows.")
    x, y = x - x.mean(0), y - y.mean(0)
    norms = torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)
    if norms == 0:
        raise UserError("linear CKA is undefined when a representation is the same for every sample.")
    return float(torch.linalg.matrix_norm(y.T @ x).square() / norms)


def _float64_matrix(values, name):
    """`values` as a float64 n x d tensor; UserError unless it is 2-D with n >= 2."""
    if values.dim() != 2 or values.shape[0] < 2:
        raise UserError(f"{name} must be an n x d matrix with n >= 2 samples; got shape {tuple(values.shape)}.")
    return values.double()


def _class_ids(labels, samples):
    """`labels` as int64 on the device of `samples`; UserError unless it holds one class id >= 0 per row."""
    n = samples.shape[0]
    if labels.dtype not in _INTEGER_DTYPES or labels.shape != (n,) or (labels < 0).any():
        raise UserError(f"labels must be {n} non-negative integer class ids, one per sample; got "
                        f"{labels.dtype} of shape {tuple(labels.shape)}.")
    return labels.to(samples.device, torch.int64)
