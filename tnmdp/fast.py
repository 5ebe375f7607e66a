"""Deprecated location of the compiled kernels: use :mod:`tnmdp.backends.numba`.

Kept importable (re-exports) for callers of the old layout; :func:`worthwhile` now lives in
:mod:`tnmdp.backends`.
"""

import warnings

from .backends import MAX_ROW_NNZ, MIN_WORK, worthwhile
from .backends.numba import (Operator, SoftBackup, backup_argmax, backward_argmax_sweep,
                             backward_soft_sweep, markov_operator, propagate_gain)
from .backends.numpy.operators import CSR, DENSE, DENSE_T, ELL, ELL_PADDING

warnings.warn("tnmdp.fast is deprecated: the kernels live in tnmdp.backends.numba and the "
              "backend choice in tnmdp.backends", DeprecationWarning, stacklevel=2)

__all__ = ["Operator", "backup_argmax", "propagate_gain", "markov_operator", "worthwhile",
           "backward_argmax_sweep", "SoftBackup", "backward_soft_sweep"]
