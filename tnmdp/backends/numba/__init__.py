"""Compiled (numba) backend: backward induction and soft backward induction at memory speed.

Split by level:

* :mod:`~tnmdp.backends.numba.kernels` -- ``@njit`` loops over packed operators (product,
  argmax, backward and forward runs of sites);
* :mod:`~tnmdp.backends.numba.parallel` -- the backward run over row blocks on all cores (large
  sparse operators; the same bits as the serial run);
* :mod:`~tnmdp.backends.numba.soft_kernels` -- ``@njit`` soft maximum and soft backward runs;
* :mod:`~tnmdp.backends.numba.argmax_sweep`, :mod:`~tnmdp.backends.numba.soft_sweep` -- the
  MDP-aware drivers: group sites into runs sharing one operator, keep environments at
  checkpoints, return the policy compactly.

Importing this package imports numba (about 0.5 s); :func:`tnmdp.backends.compiled` imports it
lazily, on the first sweep that needs it.
"""

from .. import worthwhile
from ..numpy.operators import Operator, markov_operator
from .argmax_sweep import backup_argmax, backward_argmax_sweep, propagate_gain
from .soft_sweep import SoftBackup, backward_soft_sweep

__all__ = ["Operator", "backup_argmax", "propagate_gain", "markov_operator", "worthwhile",
           "backward_argmax_sweep", "SoftBackup", "backward_soft_sweep"]
