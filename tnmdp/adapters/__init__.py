"""Adapters: low-rank policy and value models on top of the exact tnmdp core.

Submodules are imported explicitly (``from tnmdp.adapters import parafac``); nothing heavy is
imported here.
"""

__all__ = []
