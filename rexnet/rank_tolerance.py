"""The numerical-rank rule for float32 features: one home for the evaluation's feature rank and the rank study.

A singular value σ of an m × n matrix counts toward its rank when σ > σ_max · max(m, n) · eps_float32:
`torch.linalg.matrix_rank`'s default tolerance for float32 data, kept whatever precision the singular values are
computed in (a float64 tolerance would count the float32 rounding noise of the features as rank). The paper's
rank measure (the rank ratio of its rank study, Figure 1) divides this rank by the matrix's smaller dimension.
"""

import torch

EPS_FLOAT32 = torch.finfo(torch.float32).eps


def float32_rtol(m: int, n: int) -> float:
    """Returns max(m, n) · eps_float32, the rank tolerance of an m × n float32 matrix relative to σ_max."""
    return max(m, n) * EPS_FLOAT32
