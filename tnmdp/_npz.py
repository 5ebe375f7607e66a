"""The ``.npz`` file format of tnmdp: versioned, no pickle, compact.

A file is a NumPy ``.npz`` archive read with ``allow_pickle=False``. It holds

* ``__format__`` -- the string ``"tnmdp"``; ``__version__`` -- :data:`VERSION`;
  ``__kind__`` -- ``"FiniteMDP"`` or ``"Solution"``;
* the object's *state*: a nested dict of arrays, numbers and strings, flattened with ``"."``
  between levels (``mdp.rewards``, ``policy.actions``). ``None`` is stored as a zero-size
  array with the key suffix ``"!none"``.

The states are what the classes pickle as, too (``__reduce_ex__``), so pickling, ``deepcopy`` and
``save``/``load`` share one tested representation. An MDP's state keeps its compact forms: each
distinct transition operator once (``op_index[t]`` names the operator of step ``t``), CSR as its
three arrays, the reward array in its broadcast shape ``(T|1, S|1, A|1, S|1)``.

This module imports nothing from tnmdp (the classes import it), so it closes no import cycle.
"""

from __future__ import annotations

import io
import numbers
import os
import zipfile

import numpy as np
import scipy.sparse as sp

__all__ = ["VERSION", "save_state", "load_state", "plain_state", "revive", "mdp_state", "mdp_arguments",
           "policy_state"]

#: Version written by this code; files of a newer version are refused with a clear message.
VERSION = 1
FORMAT = "tnmdp"
_NONE = "!none"


# --------------------------------------------------------------------------- flat files
def _flatten(state, prefix, out):
    for key, value in state.items():
        if "." in key or key.endswith(_NONE):
            raise ValueError(f"state key {key!r} may not contain '.' or end in {_NONE!r}")
        name = prefix + key
        if isinstance(value, dict):
            _flatten(value, name + ".", out)
        elif value is None:
            out[name + _NONE] = np.zeros(0)
        else:
            arr = np.asarray(value)
            if arr.dtype == object:
                raise TypeError(f"state entry {name!r} is a {type(value).__name__}; only "
                                "arrays, numbers and strings are stored")
            out[name] = arr
    return out


def _unflatten(flat):
    state = {}
    for name, arr in flat.items():
        *path, key = name.split(".")
        node = state
        for part in path:
            node = node.setdefault(part, {})
        if key.endswith(_NONE):
            node[key[:-len(_NONE)]] = None
        else:
            node[key] = arr[()] if arr.ndim == 0 else arr
    return state


def plain_state(value):
    """``value`` with every nested object replaced by its state, recursively.

    Objects are reduced through their ``__reduce_ex__``, which for tnmdp's classes is
    ``(cls._from_state, (state,))``; anything else is a ``TypeError``.
    """
    if isinstance(value, dict):
        return {key: plain_state(item) for key, item in value.items()}
    if value is None or isinstance(value, (np.ndarray, np.generic, numbers.Number, str)):
        return value
    reduced = value.__reduce_ex__(4)
    if not (isinstance(reduced, tuple) and getattr(reduced[0], "__name__", "") == "_from_state"):
        raise TypeError(f"cannot store a {type(value).__name__} in a tnmdp file")
    return plain_state(reduced[1][0])


def revive(value, cls):
    """``cls._from_state(value)`` for a nested state read from a file, else ``value``
    (an object that pickle has already rebuilt)."""
    return cls._from_state(value) if isinstance(value, dict) else value


def save_state(path, kind, state):
    """Write ``state`` (nested dict) as a tnmdp ``.npz`` file of the given kind.

    Parameters
    ----------
    path : str or os.PathLike or file-like
        Written as given (NumPy's ``savez`` adds ``.npz`` to a name without it).
    kind : str
        ``"FiniteMDP"`` or ``"Solution"``.
    state : dict
    """
    flat = _flatten(state, "", {})
    flat.update(__format__=np.array(FORMAT), __version__=np.array(VERSION),
                __kind__=np.array(kind))
    np.savez_compressed(path, **flat)


def load_state(path, kind=None):
    """Read a tnmdp ``.npz`` file; return ``(kind, state)``.

    Parameters
    ----------
    path : str or os.PathLike or file-like
    kind : str, optional
        Required kind; another kind is a ``ValueError``.

    Raises
    ------
    ValueError
        The file is not a zip archive, is truncated or damaged, is not a tnmdp file, is of a
        newer version, or of another kind. ``FileNotFoundError`` when it does not exist.
    """
    where = os.fspath(path) if isinstance(path, (str, os.PathLike)) else "the file"
    if isinstance(path, (str, os.PathLike)):
        with open(path, "rb") as fh:  # FileNotFoundError passes through as is
            data = fh.read()
    else:
        data = path.read()
    if not data.startswith(b"PK"):
        raise ValueError(f"{where} is not a readable .npz file: not a zip archive")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            if not hasattr(npz, "files"):
                raise ValueError(f"{where} is a single .npy array, not a tnmdp .npz file")
            flat = {name: npz[name] for name in npz.files}
    except (zipfile.BadZipFile, EOFError, OSError, KeyError, zipfile.LargeZipFile) as err:
        raise ValueError(f"{where} is not a readable .npz file (truncated or damaged?): "
                         f"{err}") from None
    except ValueError as err:
        if "allow_pickle" in str(err) or "pickle" in str(err):
            raise ValueError(f"{where} holds pickled objects; tnmdp files never do") from None
        raise ValueError(f"{where} is not a readable .npz file: {err}") from None
    fmt = flat.pop("__format__", None)
    if fmt is None or str(fmt) != FORMAT:
        raise ValueError(f"{where} is an .npz file but not a tnmdp file (no __format__ = "
                         f"{FORMAT!r})")
    version = int(flat.pop("__version__", -1))
    if not 1 <= version <= VERSION:
        raise ValueError(f"{where} has tnmdp file version {version}; this tnmdp reads versions "
                         f"1..{VERSION} (upgrade tnmdp)")
    found = str(flat.pop("__kind__", ""))
    if kind is not None and found != kind:
        raise ValueError(f"{where} holds a {found}, not a {kind}")
    return found, _unflatten(flat)


# --------------------------------------------------------------------------- FiniteMDP
def _distinct(items, key):
    """``(distinct, index)``: the distinct items (by ``key``) in first-seen order."""
    seen, distinct, index = {}, [], []
    for item in items:
        k = key(item)
        if k not in seen:
            seen[k] = len(distinct)
            distinct.append(item)
        index.append(seen[k])
    return distinct, np.asarray(index, dtype=np.int64)


def mdp_state(mdp):
    """The state of a :class:`tnmdp.FiniteMDP` from its public accessors (compact forms kept).

    Cost ``O(nnz(P))`` memory shared with ``mdp`` (arrays are not copied here).
    """
    horizon = mdp.horizon
    steps = 1 if horizon is None else horizon
    ops, op_index = _distinct([mdp.transition_matrix(t) for t in range(steps)], id)
    state = {"horizon": -1 if horizon is None else horizon, "n_states": mdp.n_states,
             "n_actions": mdp.n_actions, "discount": mdp.discount, "atol": mdp.atol,
             "initial": mdp.initial, "terminal_rewards": mdp.terminal_rewards,
             "rewards": mdp.rewards, "op_index": op_index, "sparse": bool(mdp.is_sparse)}
    for k, op in enumerate(ops):
        if sp.issparse(op):
            state[f"op{k}"] = {"data": op.data, "indices": op.indices, "indptr": op.indptr}
        else:
            state[f"op{k}"] = {"dense": np.asarray(op)}
    law = mdp.reward_power_law(0)
    if law is not None:
        laws, _ = _distinct([mdp.reward_power_law(t)[0] for t in range(steps)],
                                    lambda x: x.__array_interface__["data"][0])
        state["law"] = {"law": np.stack(laws) if len(laws) > 1 else laws[0][None],
                        "values": law[1], "stationary": len(laws) == 1}
    return state


def _need(state, key):
    try:
        return state[key]
    except KeyError:
        raise ValueError(f"tnmdp file is missing the entry {key!r} (damaged or foreign)") from None


def mdp_arguments(state):
    """Constructor arguments of a :class:`tnmdp.FiniteMDP` from :func:`mdp_state`'s output.

    Returns
    -------
    args : tuple
        ``(transitions, rewards, horizon, initial, terminal_rewards)``.
    kwargs : dict
        ``discount``, ``atol``.
    law : tuple or None
        ``(law, values)`` of a :meth:`FiniteMDP.from_joint` model, ``law`` of shape
        ``(T|1, S, A, S, K)``.
    """
    S, A = int(_need(state, "n_states")), int(_need(state, "n_actions"))
    horizon = int(_need(state, "horizon"))
    horizon = None if horizon == -1 else horizon
    op_index = np.asarray(_need(state, "op_index"))
    n_ops = int(op_index.max()) + 1 if op_index.size else 0
    ops = []
    for k in range(n_ops):
        op = _need(state, f"op{k}")
        if "dense" in op:
            ops.append(np.asarray(op["dense"]).reshape(S, A, S))
        else:
            ops.append(sp.csr_array((_need(op, "data"), _need(op, "indices"),
                                     _need(op, "indptr")), shape=(S * A, S)))
    if n_ops == 0:
        raise ValueError("tnmdp file holds no transition operator (damaged or foreign)")
    if n_ops == 1:  # stationary: one operator for every step
        transitions = ops[0]
    elif sp.issparse(ops[0]):
        transitions = [ops[k] for k in op_index]
    else:
        transitions = np.stack([ops[k] for k in op_index])
    args = (transitions, _need(state, "rewards"), horizon, _need(state, "initial"),
            _need(state, "terminal_rewards") if horizon is not None else None)
    kwargs = {"discount": float(_need(state, "discount")), "atol": float(_need(state, "atol"))}
    law = state.get("law")
    if law is not None:
        law = (np.asarray(_need(law, "law")), np.asarray(_need(law, "values")))
    return args, kwargs, law


# --------------------------------------------------------------------------- policies
def policy_state(policy):
    """The state of a :class:`tnmdp.Policy` stored as sites (not a soft policy) from its
    public accessors: ``{"kind": "actions", "actions": (T, S) ints}`` when every site is
    stored as actions, else ``{"kind": "sites", "sites": (K, S, A), "index": (T,)}`` with each
    distinct site object once (the uniform policy is one site)."""
    sites = [policy.site(t) for t in range(policy.horizon)]
    if all(site.ndim == 1 for site in sites):
        return {"kind": "actions", "actions": np.stack(sites), "n_actions": policy.n_actions}
    distinct, index = _distinct(sites, id)
    eye = np.eye(policy.n_actions)
    dense = [eye[site] if site.ndim == 1 else np.asarray(site, dtype=np.float64)
             for site in distinct]
    return {"kind": "sites", "sites": np.stack(dense), "index": index,
            "n_actions": policy.n_actions}
