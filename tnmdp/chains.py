"""Classification of Markov chains and of continuing MDPs (Puterman 1994, Sects. A.2 and 8.3).

* Under a stationary policy the chain ``P_pi`` splits into **recurrent classes** -- the closed
  strongly connected components of its transition graph (sinks of the condensation) -- and
  **transient states**; one recurrent class is *unichain*, more is *multichain*.
* For the model (no policy): the graph with an edge ``s -> s'`` when some action reaches ``s'``.
  The model is **communicating** when that graph is strongly connected (Puterman Sect. 8.3.1:
  every state reaches every other under some policy), and **weakly communicating** when exactly
  one set of states is recurrent under some policy, all others being transient under every
  policy: exactly one maximal *end component* (a set of states with, for each, a non-empty set
  of actions that keeps the chain inside the set, strongly connected under those actions), found
  by the usual refinement -- split into SCCs, drop actions that leave their SCC, drop states left
  without actions, repeat (de Alfaro 1997). **Closed classes** are the SCCs no action leaves.

Graphs are :mod:`networkx` ``DiGraph`` objects (imported lazily); building one costs
``O(S + nnz(P))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

__all__ = ["Classification", "classify", "recurrent_classes"]


@dataclass(frozen=True)
class Classification:
    """Result of :func:`classify`.

    Attributes
    ----------
    recurrent_classes : tuple of ndarray of int
        With a policy: the recurrent classes (closed SCCs of ``P_pi``), each sorted, ordered by
        smallest state. Without one: ``None``.
    transient_states : ndarray of int or None
        With a policy: the states in no recurrent class (sorted).
    kind : {"unichain", "multichain"} or None
        With a policy.
    communicating, weakly_communicating : bool or None
        Without a policy (Puterman Sect. 8.3).
    closed_classes : tuple of ndarray of int or None
        Without a policy: SCCs of the model graph that no action leaves.
    end_components : tuple of ndarray of int or None
        Without a policy: the maximal end components (states recurrent under some policy).
    """

    recurrent_classes: tuple | None = None
    transient_states: np.ndarray | None = None
    kind: str | None = None
    communicating: bool | None = None
    weakly_communicating: bool | None = None
    closed_classes: tuple | None = None
    end_components: tuple | None = None


def _graph(matrix, nodes=None):
    """``networkx.DiGraph`` with an edge ``i -> j`` where ``matrix[i, j] > 0`` (square)."""
    import networkx as nx

    csr = sp.csr_array(matrix)
    csr.eliminate_zeros()
    n = csr.shape[0]
    rows = np.repeat(np.arange(n), np.diff(csr.indptr))
    graph = nx.DiGraph()
    graph.add_nodes_from(range(n) if nodes is None else nodes)
    graph.add_edges_from(zip(rows.tolist(), csr.indices.tolist()))
    return graph


def _sorted_classes(sets):
    return tuple(sorted((np.array(sorted(c), dtype=np.int64) for c in sets),
                        key=lambda a: int(a[0])))


def recurrent_classes(P):
    """Recurrent classes and transient states of a Markov matrix ``P`` (S, S).

    Returns
    -------
    classes : tuple of ndarray of int
        Closed strongly connected components, sorted.
    transient : ndarray of int

    Notes
    -----
    A closed SCC of a finite chain is exactly a recurrent class (Puterman Sect. A.2). Cost
    ``O(S + nnz(P))``.
    """
    import networkx as nx

    graph = _graph(P)
    cond = nx.condensation(graph)
    closed = [cond.nodes[c]["members"] for c in cond.nodes if cond.out_degree(c) == 0]
    classes = _sorted_classes(closed)
    in_class = np.zeros(P.shape[0], dtype=bool)
    for c in classes:
        in_class[c] = True
    return classes, np.flatnonzero(~in_class)


def _end_components(P, n_states, n_actions):
    """Maximal end components of the model (list of sorted int arrays)."""
    import networkx as nx

    csr = sp.csr_array(P)
    allowed = np.ones((n_states, n_actions), dtype=bool)
    alive = np.ones(n_states, dtype=bool)
    while True:
        rows = np.flatnonzero(allowed.ravel())
        sub = csr[rows]
        union = sp.csr_array((np.ones(sub.nnz), sub.indices,
                              np.concatenate([[0], np.cumsum(np.diff(sub.indptr))])),
                             shape=(rows.size, n_states))
        owner = sp.csr_array((np.ones(rows.size), (rows // n_actions, np.arange(rows.size))),
                             shape=(n_states, rows.size))
        graph = _graph(owner @ union)
        graph.remove_nodes_from(np.flatnonzero(~alive).tolist())
        label = np.full(n_states, -1)
        comps = list(nx.strongly_connected_components(graph))
        for i, comp in enumerate(comps):
            label[list(comp)] = i
        # an action stays if all its successors are in its own state's component
        succ_label = label[csr.indices]
        row_of = np.repeat(np.arange(n_states * n_actions), np.diff(csr.indptr))
        leaves = np.zeros(n_states * n_actions, dtype=bool)
        np.logical_or.at(leaves, row_of, succ_label != label[row_of // n_actions])
        new_allowed = allowed & ~leaves.reshape(n_states, n_actions) & alive[:, None]
        new_alive = alive & new_allowed.any(axis=1)
        if (new_allowed == allowed).all() and (new_alive == alive).all():
            break
        allowed, alive = new_allowed, new_alive
    comps = [c for c in comps if alive[list(c)].all()]
    return list(_sorted_classes(comps))


def classify(mdp, policy=None):
    """Classify a continuing MDP, or the chain of one of its stationary policies.

    Parameters
    ----------
    mdp : FiniteMDP
        Continuing (``horizon=None``).
    policy : StationaryPolicy or array_like (S, A) or (S,) int actions, optional

    Returns
    -------
    Classification
        With ``policy``: ``recurrent_classes``, ``transient_states`` and ``kind``. Without:
        ``communicating``, ``weakly_communicating``, ``closed_classes`` and ``end_components``.

    Examples
    --------
    >>> import numpy as np, tnmdp
    >>> P = np.array([[[1.0, 0.0]], [[0.5, 0.5]]])      # state 1 drains into absorbing 0
    >>> c = tnmdp.classify(tnmdp.FiniteMDP(P, np.zeros((2, 1)), None, 0), [0, 0])
    >>> c.kind, [k.tolist() for k in c.recurrent_classes], c.transient_states.tolist()
    ('unichain', [[0]], [1])
    """
    from .stationary import as_stationary_policy, check_continuing, policy_matrix

    check_continuing(mdp, "classify")
    if policy is not None:
        pol = as_stationary_policy(policy, mdp)
        classes, transient = recurrent_classes(policy_matrix(mdp, pol, rewards=False))
        return Classification(recurrent_classes=classes, transient_states=transient,
                              kind="unichain" if len(classes) == 1 else "multichain")
    import networkx as nx

    S, A = mdp.n_states, mdp.n_actions
    P = sp.csr_array(mdp.transition_matrix(0))
    owner = sp.csr_array((np.ones(S * A), (np.arange(S * A) // A, np.arange(S * A))),
                         shape=(S, S * A))
    graph = _graph(owner @ P)
    cond = nx.condensation(graph)
    closed = _sorted_classes(cond.nodes[c]["members"] for c in cond.nodes
                             if cond.out_degree(c) == 0)
    ends = _end_components(P, S, A)
    return Classification(communicating=nx.is_strongly_connected(graph),
                          weakly_communicating=len(ends) == 1, closed_classes=closed,
                          end_components=tuple(ends))
