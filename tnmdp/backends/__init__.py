"""Backends of the closed-form backward sweeps: one choice, made here.

A backward sweep with a closed-form local optimum (the argmax at ``temperature = 0``, the
Boltzmann policy at ``temperature > 0``) runs on one of two backends:

``"numpy"``
    the per-site kernels of :mod:`tnmdp.kernels` (scipy's CSR product, numpy reductions):
    no compilation, about 100 us of dispatch per site;
``"numba"``
    the compiled whole-run loops of :mod:`tnmdp.backends.numba` (fused product, argmax or
    soft maximum, and objective): no dispatch per site, both cores for large operators.

``"auto"`` (the default) picks numba when it is installed and the problem repays loading the
kernels (:func:`worthwhile`), numpy otherwise. :func:`select` is the only place the choice is
made; :func:`tnmdp.solve` and :class:`tnmdp.policy.SoftPolicy` both call it.
"""

from __future__ import annotations

import scipy.sparse as sp

__all__ = ["BACKENDS", "MIN_WORK", "MAX_ROW_NNZ", "MIN_SAMPLE_WORK", "worthwhile", "select",
           "compiled", "sampler"]

#: Valid values of ``backend``.
BACKENDS = ("auto", "numpy", "numba")

#: Below this many state-action-site updates (``T * S * A``) the numpy sweep is as fast and
#: needs no compilation: :func:`worthwhile` says no.
MIN_WORK = 2**17

#: Sparse operators with more stored entries per ``(s, a)`` row (on average) stay on numpy:
#: with wide rows scipy's CSR product beats the gather kernels
#: (``benchmarks/results/strategies.json``, ``density_sparse``).
MAX_ROW_NNZ = 16


def worthwhile(mdp):
    """True when the compiled sweep pays for itself on ``mdp``.

    Needs ``T * S * A >= MIN_WORK`` (below, loading the kernels costs more than the numpy
    sweep) and, for sparse operators, at most ``MAX_ROW_NNZ`` stored entries per ``(s, a)`` row
    on average.
    """
    if mdp.horizon * mdp.n_states * mdp.n_actions < MIN_WORK:
        return False
    P = mdp.transition_matrix(0)
    return not sp.issparse(P) or P.nnz <= MAX_ROW_NNZ * P.shape[0]


def _numba_available():
    try:
        import numba  # noqa: F401
    except ImportError:  # pragma: no cover - numba is a declared dependency
        return False
    return True


def select(mdp, backend="auto"):
    """The backend that runs the closed-form sweeps of ``mdp``: ``"numpy"`` or ``"numba"``.

    Parameters
    ----------
    mdp : FiniteMDP
    backend : {"auto", "numpy", "numba"}
        ``"auto"``: numba when installed and :func:`worthwhile`, else numpy.

    Raises
    ------
    ValueError
        For an unknown ``backend``.
    ImportError
        For ``backend="numba"`` without numba installed.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}; "
                         f"got {backend!r}")
    if backend == "numpy":
        return "numpy"
    if backend == "numba":
        if not _numba_available():  # pragma: no cover
            raise ImportError("backend='numba' needs numba (pip install numba)")
        return "numba"
    return "numba" if worthwhile(mdp) and _numba_available() else "numpy"


#: ``sample`` uses the compiled sampler from this many episode-steps (``n T``) on.
MIN_SAMPLE_WORK = 2**15


def sampler(mdp, n_episodes, backend="auto"):
    """The compiled sampler :func:`tnmdp.backends.numba.sampling.sample_steps`, or ``None`` for
    the numpy one: ``"auto"`` compiles from :data:`MIN_SAMPLE_WORK` episode-steps on, for
    deterministic rewards (stochastic reward laws stay on numpy)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}; "
                         f"got {backend!r}")
    if backend == "numpy" or mdp.reward_power_law(0) is not None:
        return None
    if backend == "auto" and (n_episodes * mdp.horizon < MIN_SAMPLE_WORK
                              or not _numba_available()):
        return None
    from .numba.sampling import sample_steps

    return sample_steps


def compiled(mdp, backend="auto"):
    """The module :mod:`tnmdp.backends.numba` when :func:`select` picks it, else ``None``."""
    if select(mdp, backend) != "numba":
        return None
    from . import numba

    return numba
