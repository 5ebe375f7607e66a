"""Beyond one machine: row-block sweeps and batches of solves on a Dask cluster.

* :class:`BlockMDP` -- a model given by ``block_fn(lo, hi)``, built and validated row block by
  row block on the workers, so the full operator never exists in one process (as madupite
  distributes PETSc row blocks over MPI);
* :func:`solve` -- exact (hard or soft) backward induction, one task per block and step, with
  the compiled kernels of :func:`tnmdp.solve`; :func:`evaluate` -- the expected return of a
  policy held as blocks (:class:`BlockPolicy`) or given locally;
* :func:`solve_many` -- many independent :func:`tnmdp.solve` calls on local processes or a
  cluster.

Dask (``pip install tnmdp[distributed]``) is imported only when a function here needs it;
numba only on the workers.
"""

from .batch import solve_many
from .blocks import BlockMDP
from .blocksweep import BlockPolicy, evaluate, solve

__all__ = ["BlockMDP", "BlockPolicy", "solve", "evaluate", "solve_many"]
