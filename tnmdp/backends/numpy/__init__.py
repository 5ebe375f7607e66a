"""The numpy level of the backends: operators packed for the compiled kernels.

The numpy per-site kernels themselves (backups, propagation, soft maxima) are
:mod:`tnmdp.kernels`; this package holds the packing that both backends share and that needs
no compiler (:mod:`tnmdp.backends.numpy.operators`).
"""

from .operators import CSR, DENSE, DENSE_T, ELL, ELL_PADDING, Operator, markov_operator

__all__ = ["ELL", "CSR", "DENSE", "DENSE_T", "ELL_PADDING", "Operator", "markov_operator"]
