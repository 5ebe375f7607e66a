"""pydata ``sparse`` arrays (COO, GCXS, DOK) at the boundary, converted once to scipy CSR.

tnmdp stores sparse operators as scipy CSR; this module recognises the arrays of the pydata
`sparse <https://sparse.pydata.org>`_ package without importing it (it is an optional
dependency) and converts them. Imports nothing from tnmdp, so the model can use it.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["is_pydata_sparse", "pydata_to_scipy"]


def is_pydata_sparse(x):
    """True when ``x`` is an array of the pydata ``sparse`` package (``sparse.SparseArray``)."""
    module = type(x).__module__ or ""
    return module.split(".")[0] == "sparse" and hasattr(x, "nnz") and hasattr(x, "shape")


def pydata_to_scipy(x, *, name="array"):
    """Convert a 2-d pydata ``sparse`` array, or a 3-d one of shape ``(S, A, S)``, to CSR.

    Parameters
    ----------
    x : sparse.SparseArray
        2-d ``(m, n)``: converted as is; 3-d ``(S, A, S')``: read as ``P[s, a, s']`` and reshaped
        to the ``(S*A, S')`` operator with row ``s*A + a``.
    name : str
        Argument name for error messages.

    Returns
    -------
    scipy.sparse.csr_array

    Notes
    -----
    Cost ``O(nnz)``; the result shares no memory with ``x``.
    """
    if not is_pydata_sparse(x):
        raise TypeError(f"{name} must be a pydata sparse array, got {type(x).__name__}")
    if x.ndim not in (2, 3):
        raise ValueError(f"{name} is a {x.ndim}-d pydata sparse array of shape {x.shape}; "
                         "expected 2-d (S*A, S) or 3-d (S, A, S)")
    coo = x.asformat("coo")
    coords = np.asarray(coo.coords)
    data = np.asarray(coo.data)
    if coo.ndim == 3:
        n_states, n_actions, n_next = coo.shape
        rows = coords[0] * n_actions + coords[1]
        cols = coords[2]
        shape = (n_states * n_actions, n_next)
    else:
        rows, cols, shape = coords[0], coords[1], coo.shape
    if not (np.issubdtype(data.dtype, np.number) or data.dtype == bool):
        raise TypeError(f"{name} must hold real numbers, got dtype {data.dtype}")
    fill = getattr(coo, "fill_value", 0)
    if fill != 0:
        raise ValueError(f"{name} has fill value {fill}; only 0 is a sparse zero")
    return sp.csr_array((data, (rows, cols)), shape=shape)
