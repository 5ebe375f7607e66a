"""Adapters: low-rank policy and value models on top of the exact tnmdp core.

Submodules are imported explicitly (``from tnmdp.adapters import parafac``); nothing heavy is
imported here. The adapters share their plumbing: :mod:`~tnmdp.adapters.cp` (the CP core),
:mod:`~tnmdp.adapters.sampling` (transition sampler, environment, rollouts),
:mod:`~tnmdp.adapters.optim` (SGD, Adam, Adamax; descent on dicts of arrays) and
:mod:`~tnmdp.adapters.exact` (exact Q tables and policy gradients from :func:`tnmdp.solve` and
:func:`tnmdp.policy_values`). One naming: ``discount``, ``learning_rate``, ``n_parameters``,
``state_shape`` (older names are deprecated aliases).

The other source papers: :mod:`~tnmdp.adapters.implicit` (values as a learned Markov reward
chain, Gehring et al. 2021), :mod:`~tnmdp.adapters.lowrank_sparse` (``(W1 W2) ⊙ M``
connectivity, arXiv 2310.03915) and :mod:`~tnmdp.adapters.recurrent` (RNN/GRU/LSTM/CfC policies
with that connectivity; needs jax, the ``[rnn]`` extra).
"""

__all__ = []
