"""Argument checks shared by the public entry points (solve, evaluate, tilted, ...).

Validation happens once, at the public boundary; inner kernels trust their inputs. Messages
name the argument and the offending value (STYLE.md).
"""

from __future__ import annotations

import numbers

import numpy as np

from .model import FiniteMDP
from .policy import as_policy

__all__ = ["check_mdp", "check_temperature", "check_reference", "check_atol", "check_policy"]


def check_mdp(mdp):
    """Raise ``TypeError`` unless ``mdp`` is a :class:`tnmdp.FiniteMDP`; ``ValueError`` if it is
    continuing (``horizon=None``): the callers need a finite horizon."""
    if not isinstance(mdp, FiniteMDP):
        raise TypeError(f"mdp must be a tnmdp.FiniteMDP, got {type(mdp).__name__}")
    mdp.require_horizon()


def check_temperature(temperature):
    """Validate a temperature ``>= 0`` (finite); return it as a float."""
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not (
            np.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
    return float(temperature)


def check_atol(atol, mdp):
    """``atol`` for reading probabilities: ``None`` means the model's (``mdp.atol``)."""
    if atol is None:
        return mdp.atol
    if isinstance(atol, bool) or not isinstance(atol, numbers.Real) or not (
            np.isfinite(atol) and atol >= 0):
        raise ValueError(f"atol must be a finite number >= 0, got {atol!r}")
    return float(atol)


def check_policy(policy, mdp, *, atol=None, name="policy"):
    """Validate ``policy`` against ``mdp`` (:func:`tnmdp.policy.as_policy`) with ``atol``
    (default the model's)."""
    return as_policy(policy, mdp, name=name, atol=check_atol(atol, mdp))


def check_reference(reference_policy, mdp):
    """Validate ``reference_policy`` (``None`` means uniform)."""
    if reference_policy is None:
        return None
    return as_policy(reference_policy, mdp, name="reference_policy")
