"""Deprecated keyword and attribute names of the adapters (one naming across adapters).

The adapters use ``discount`` (not ``gamma``), ``learning_rate`` (not ``lr``), ``n_parameters``
(not ``n_params``) and ``state_shape`` for the modes of the state (not ``mode_sizes``). The old
names still work and emit a ``DeprecationWarning``.
"""

from __future__ import annotations

import warnings

__all__ = ["UNSET", "renamed_argument", "deprecated_property"]

#: Default of a deprecated keyword: distinguishes "not passed" from ``None``.
UNSET = object()


def renamed_argument(function, old, new, old_value, new_value, default=None):
    """The value of keyword ``new``, taken from the deprecated ``old`` when that was passed.

    ``new_value`` is ``UNSET`` when the caller did not pass ``new``; then ``default``.
    """
    if old_value is UNSET:
        return default if new_value is UNSET else new_value
    if new_value is not UNSET:
        raise TypeError(f"{function}() got both {new}= and its deprecated alias {old}=")
    warnings.warn(f"{function}({old}=...) is deprecated; use {new}=", DeprecationWarning,
                  stacklevel=3)
    return old_value


def deprecated_property(old, new):
    """A read-only property ``old`` that returns attribute ``new`` with a DeprecationWarning."""
    def getter(self):
        warnings.warn(f"{type(self).__name__}.{old} is deprecated; use .{new}",
                      DeprecationWarning, stacklevel=2)
        return getattr(self, new)

    return property(getter, doc=f"Deprecated alias of :attr:`{new}`.")
