"""Scale-free graphs, their partition hierarchy, and the graph restriction operator.

Graphs. `power_law_graph` draws a Chung-Lu graph: node i gets an expected degree
``w_i = w_min (n / (i + 1))^(1 / (gamma - 1))`` (the quantiles of a Pareto law with density
``~ w^-gamma``), rescaled so that the mean is ``mean_degree``; ``round(sum(w) / 2)`` edges
are drawn with both endpoints independent and ``P(i) ~ w_i``, so the pair (i, j) is hit
``w_i w_j / sum(w)`` times on average and the degree of i is Poisson(w_i) mixed over a
power law: its tail exponent is gamma. Self loops are dropped and repeated pairs merged
(that saturates the largest hubs: their degree is a little below w_i), then the largest
connected component is kept and relabelled in random order (so that node numbers carry no
degree information). Everything is one pass of sorting and searching over the edge list:
a 1M-node graph takes seconds (networkx's generators loop in Python over nodes).

Partitions. `partition_hierarchy` coarsens the graph by multilevel heavy-edge matching,
the coarsening phase of METIS/Graclus, written here with whole-array operations because no
installed library exposes the nested aggregates of a 1M-node graph (pyamg's aggregation is
unnested per call and loops in Python; METIS is not installed). One matching pass:

* every super-node a points to the neighbour b maximising the normalised-cut score
  ``C_ab (1/vol_a + 1/vol_b)`` (``vol`` = summed degree; ties broken at random), among
  super-nodes still unmatched; mutual pointers are matched (handshake), a few rounds;
* two-hop matching (mt-metis, for power-law graphs): nodes left unmatched are paired with
  another unmatched node pointing at the same neighbour. On a star, the hub can take only
  one leaf; the other leaves pair among themselves instead of staying single.

The normalised score keeps hubs from swallowing their neighbourhood, and a pass at most
halves the count, so no super-node can grow by more than 2x per pass. A level repeats
passes until the count has dropped by ``factor`` (4 by default: the graph analogue of the
grid factor k = 2 per axis); its last pass keeps a random subset of its pairs so that the
level lands on ``n_prev / factor`` super-nodes. Levels are nested by construction. The Laplacian
renormalisation of ROMA needs diffusion eigenvectors: far costlier at 1M nodes, and it
does not give a hard partition, so it is left to learned methods.

The coarse adjacency of a level is ``C = P^T A P`` with P the 0/1 membership matrix: off
the diagonal, the number of edges between two super-nodes; on it, twice the edges inside
one. Row sums are therefore the super-nodes' volumes, exactly.

`restrict_graph` is the graph ``R_k``: the mean over each super-node's members. Like the
block average of `nskernel.grid.restrict`, it preserves sums (``sizes . R u = sum u``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize_scalar
from scipy.sparse.csgraph import connected_components
from scipy.special import zeta

MATCH_ROUNDS = 4  # handshake rounds per pass; a 5th matched 0.02% more nodes (200k-node graph)
MAX_PASSES = 8  # per level; a level that cannot shrink by `factor` stops here


def power_law_graph(n: int, exponent: float = 2.25, mean_degree: float = 8.0, seed: int = 0) -> sp.csr_matrix:
    """Largest connected component of a Chung-Lu graph on ``n`` nodes (module docstring).

    Returns a symmetric CSR 0/1 adjacency (float64) without self loops.
    The component keeps ~80-95% of the nodes, depending on ``mean_degree``.
    """
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    if not 2.0 < exponent < 4.0:
        raise ValueError(f"exponent must lie in (2, 4) (finite mean degree), got {exponent}")
    if mean_degree <= 0:
        raise ValueError(f"mean_degree must be positive, got {mean_degree}")
    rng = np.random.default_rng(seed)
    w = (n / np.arange(1.0, n + 1)) ** (1.0 / (exponent - 1.0))
    w *= mean_degree / w.mean()
    cdf = np.cumsum(w)
    m = int(round(cdf[-1] / 2))
    # inverse-CDF sampling of both endpoints (searchsorted: O(m log n), no per-edge loop)
    ends = np.searchsorted(cdf, rng.random(2 * m) * cdf[-1], side="right").reshape(2, m)
    ends = np.minimum(ends, n - 1)  # guards u * cdf[-1] rounding up to cdf[-1]
    i, j = np.minimum(ends[0], ends[1]), np.maximum(ends[0], ends[1])
    keep = i != j
    key = np.unique(i[keep] * np.int64(n) + j[keep])  # merges repeated pairs
    i, j = key // n, key % n
    adj = sp.coo_matrix((np.ones(2 * len(i)), (np.r_[i, j], np.r_[j, i])), shape=(n, n)).tocsr()
    _, label = connected_components(adj, directed=False)
    giant = np.flatnonzero(label == np.bincount(label).argmax())
    order = giant[rng.permutation(len(giant))]
    return adj[order][:, order].tocsr()


def coupling_matrix(adj: sp.spmatrix) -> sp.csr_matrix:
    """Row-normalised coupling ``w_ij = A_ij / sum_j A_ij`` (raises on an isolated node)."""
    adj = sp.csr_matrix(adj, dtype=np.float64)
    deg = np.asarray(adj.sum(axis=1)).ravel()
    if (deg <= 0).any():
        raise ValueError(f"{int((deg <= 0).sum())} node(s) have no edges; w_ij = A_ij / k_i needs k_i > 0")
    return sp.csr_matrix(sp.diags(1.0 / deg) @ adj)


def fit_power_law(degrees: np.ndarray, min_tail: int = 100) -> tuple[float, int, int]:
    """Discrete power-law fit of Clauset, Shalizi & Newman (SIAM Rev. 2009), by hand (the
    `powerlaw` package is not installed): for each candidate ``k_min`` the exponent
    maximises ``-alpha sum ln k - n_tail ln zeta(alpha, k_min)`` over the tail ``k >= k_min``;
    ``k_min`` minimises the Kolmogorov-Smirnov distance between the tail and its fit.
    Returns ``(alpha, k_min, n_tail)``; candidates keep at least ``min_tail`` samples."""
    values, counts = np.unique(np.asarray(degrees, dtype=np.int64), return_counts=True)
    counts, values = counts[values >= 1], values[values >= 1]
    tail_n = np.cumsum(counts[::-1])[::-1]
    best = (np.inf, 0.0, 0, 0)
    for i in np.flatnonzero(tail_n >= min_tail):
        k, c, kmin = values[i:], counts[i:], values[i]
        slog = float(c @ np.log(k))
        nll = lambda a, kmin=kmin, slog=slog, n=tail_n[i]: a * slog + n * np.log(zeta(a, kmin))  # noqa: E731
        alpha = minimize_scalar(nll, bounds=(1.05, 6.0), method="bounded", options={"xatol": 1e-6}).x
        model_cdf = 1.0 - zeta(alpha, k + 1) / zeta(alpha, kmin)
        ks = np.abs(np.cumsum(c) / tail_n[i] - model_cdf).max()
        if ks < best[0]:
            best = (ks, float(alpha), int(kmin), int(tail_n[i]))
    if not np.isfinite(best[0]):
        raise ValueError(f"fewer than min_tail={min_tail} positive degrees to fit")
    return best[1], best[2], best[3]


@dataclass(frozen=True)
class Partition:
    """One level of the hierarchy.

    ``members (n,)``: the super-node of every fine node; ``parent (n_prev,)``: the
    super-node of every super-node of the level below (level 0: the identity);
    ``sizes``: fine nodes per super-node; ``adjacency``: ``P^T A P`` (module docstring).
    """

    members: np.ndarray
    parent: np.ndarray
    sizes: np.ndarray
    adjacency: sp.csr_matrix

    @property
    def n_super(self) -> int:
        return len(self.sizes)


def _pick(indptr: np.ndarray, rows: np.ndarray, cols: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Per row, the column of the largest finite score (-1 if the row has none)."""
    n = len(indptr) - 1
    best = np.full(n, -np.inf)
    nonempty = np.flatnonzero(np.diff(indptr) > 0)
    if len(score):
        best[nonempty] = np.maximum.reduceat(score, indptr[nonempty])
    hit = np.flatnonzero(np.isfinite(score) & (score == best[rows]))
    first = np.r_[True, rows[hit][1:] != rows[hit][:-1]] if len(hit) else np.zeros(0, bool)
    pick = np.full(n, -1)
    pick[rows[hit][first]] = cols[hit][first]
    return pick


def _matching_pass(c: sp.csr_matrix, rng: np.random.Generator, max_merges: int) -> np.ndarray:
    """One pass of normalised heavy-edge + two-hop matching, at most ``max_merges`` pairs
    (a random subset is kept where more were found); returns ``parent (n,)``."""
    n = c.shape[0]
    rows = np.repeat(np.arange(n), np.diff(c.indptr))
    cols = c.indices
    vol = np.asarray(c.sum(axis=1)).ravel()
    # random jitter breaks ties (a hub's leaves all score alike) without reordering real gaps
    score = c.data * (1.0 / vol[rows] + 1.0 / vol[cols]) * (1.0 + 1e-9 * rng.random(len(cols)))
    score[rows == cols] = -np.inf
    mate = np.full(n, -1)
    for _ in range(MATCH_ROUNDS):
        free = mate < 0
        pick = _pick(c.indptr, rows, cols, np.where(free[rows] & free[cols], score, -np.inf))
        node = np.flatnonzero(pick >= 0)
        mutual = node[pick[pick[node]] == node]
        if len(mutual) == 0:
            break
        mate[mutual] = pick[mutual]
    # two-hop: unmatched nodes sharing their favourite neighbour pair up (random order)
    single = np.flatnonzero(mate < 0)
    hub = _pick(c.indptr, rows, cols, score)[single]
    single, hub = single[hub >= 0], hub[hub >= 0]
    order = np.lexsort((rng.random(len(single)), hub))
    single, hub = single[order], hub[order]
    start = np.r_[True, hub[1:] != hub[:-1]] if len(hub) else np.zeros(0, bool)
    rank = np.arange(len(hub)) - np.maximum.accumulate(np.where(start, np.arange(len(hub)), 0))
    first = np.flatnonzero((rank % 2 == 0)[:-1] & (hub[1:] == hub[:-1]))
    mate[single[first]], mate[single[first + 1]] = single[first + 1], single[first]
    pairs = np.flatnonzero(mate > np.arange(n))
    if len(pairs) > max_merges:  # the level's last pass: stop at the target count
        drop = rng.choice(pairs, len(pairs) - max(max_merges, 0), replace=False)
        mate[mate[drop]], mate[drop] = -1, -1
    rep = np.where(mate >= 0, np.minimum(np.arange(n), mate), np.arange(n))
    return np.unique(rep, return_inverse=True)[1]


def _coarsen(c: sp.csr_matrix, parent: np.ndarray) -> sp.csr_matrix:
    n, nc = len(parent), int(parent.max()) + 1
    p = sp.csr_matrix((np.ones(n), (np.arange(n), parent)), shape=(n, nc))
    return sp.csr_matrix(p.T @ c @ p)


def partition_hierarchy(adj: sp.spmatrix, levels: int, factor: float = 4.0, seed: int = 0) -> list[Partition]:
    """Levels ``0..levels`` of nested partitions; level 0 is the identity (module docstring).

    Level l has ``round(n_{l-1} / factor)`` super-nodes (fewer passes' worth where matching
    stalls); the hierarchy stops early (shorter list) once a level cannot shrink.
    """
    if levels < 0:
        raise ValueError(f"levels must be >= 0, got {levels}")
    if factor <= 1.0:
        raise ValueError(f"factor must be > 1 (super-nodes per level shrink by it), got {factor}")
    rng = np.random.default_rng(seed)
    c = sp.csr_matrix(adj, dtype=np.float64)
    n = c.shape[0]
    ident = np.arange(n)
    out = [Partition(ident, ident, np.ones(n, dtype=np.int64), c)]
    for _ in range(levels):
        start, parent = c.shape[0], np.arange(c.shape[0])
        target = max(int(round(start / factor)), 1)
        for _ in range(MAX_PASSES):
            step = _matching_pass(c, rng, c.shape[0] - target)
            if step.max() + 1 > 0.95 * c.shape[0] and step.max() + 1 > target:  # stalled
                break
            parent, c = step[parent], _coarsen(c, step)
            if c.shape[0] <= target:
                break
        if c.shape[0] == start or c.shape[0] < 2:
            break
        members = parent[out[-1].members]
        out.append(Partition(members, parent, np.bincount(members), c))
    return out


def restrict_graph(values: Any, members: np.ndarray, n_super: int | None = None) -> Any:
    """Mean of ``values (..., n)`` over each super-node's members -> ``(..., n_super)``.

    NumPy arrays (one bincount over the flattened batch) or torch tensors (index_add).
    ``sizes @ restrict_graph(u, members) == u.sum(-1)`` to round-off.
    """
    members = np.asarray(members)
    nc = int(members.max()) + 1 if n_super is None else n_super
    if values.shape[-1] != len(members):
        raise ValueError(f"values have {values.shape[-1]} nodes on the last axis, members map {len(members)}")
    sizes = np.bincount(members, minlength=nc)
    if isinstance(values, np.ndarray):
        flat = values.reshape(-1, len(members))
        idx = (members[None, :] + nc * np.arange(len(flat))[:, None]).ravel()
        sums = np.bincount(idx, weights=flat.ravel(), minlength=nc * len(flat)).reshape(flat.shape[0], nc)
        return (sums / sizes).reshape(*values.shape[:-1], nc)
    import torch

    index = torch.as_tensor(members, device=values.device)
    sums = torch.zeros(*values.shape[:-1], nc, dtype=values.dtype, device=values.device)
    sums.index_add_(-1, index, values)
    return sums / torch.as_tensor(sizes, dtype=values.dtype, device=values.device)


def prolong_graph(values: Any, members: np.ndarray) -> Any:
    """Piecewise-constant prolongation ``(..., n_super) -> (..., n)``; restrict o prolong = id."""
    return values[..., np.asarray(members)]
