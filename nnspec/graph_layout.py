"""A layered (Sugiyama) drawing of a directed acyclic graph, top to bottom, in pure Python:
longest-path layers; a dummy node in every layer an edge skips, so long edges run between the
boxes instead of across them; barycenter ordering against crossings; and x positions as close
to each node's neighbours as the boxes' widths allow (a least-squares fit under the ordering,
by pool-adjacent-violators). Sizes are in any unit (inches for nnspec plot)."""
from __future__ import annotations

from dataclasses import dataclass, field

GAP_X = 0.35  # between neighbouring boxes in a layer
GAP_Y = 0.55  # between layers: room for the edges to bend
DUMMY_WIDTH = 0.1  # the lane a long edge takes through a layer
SWEEPS = 12
WEAK = 0.1  # the pull between a box and a long edge's lane, and a lane's say where it meets a box


@dataclass
class Box:
    x: float  # centre
    y: float  # top (y grows downwards)
    width: float
    height: float

    @property
    def left(self) -> float:
        return self.x - self.width / 2

    @property
    def right(self) -> float:
        return self.x + self.width / 2

    @property
    def bottom(self) -> float:
        return self.y + self.height


@dataclass
class Layout:
    boxes: list[Box]  # one per node, in the order given
    edges: list[list[tuple[float, float]]]  # one polyline per edge, in the order given, source to target
    width: float
    height: float
    layers: list[list[int]] = field(default_factory=list)  # node indices (dummies >= len(boxes)) per layer


def layered_layout(sizes: list[tuple[float, float]], edges: list[tuple[int, int]]) -> Layout:
    """`sizes`: (width, height) per node; `edges`: (source, target) pairs of a DAG whose sources
    come before their targets in node order."""
    n = len(sizes)
    layer = [0] * n
    for src, dst in sorted(edges, key=lambda e: e[1]):  # longest path from the sources
        layer[dst] = max(layer[dst], layer[src] + 1)
    widths = [w for w, _ in sizes]
    succ: dict[int, list[int]] = {}
    pred: dict[int, list[int]] = {}
    chains = []  # per edge: the nodes it passes, dummies included
    for src, dst in edges:
        chain = [src]
        for _ in range(layer[src] + 1, layer[dst]):
            layer.append(layer[chain[-1]] + 1)
            widths.append(DUMMY_WIDTH)
            chain.append(len(widths) - 1)
        chain.append(dst)
        for a, b in zip(chain, chain[1:]):
            succ.setdefault(a, []).append(b)
            pred.setdefault(b, []).append(a)
        chains.append(chain)
    layers: list[list[int]] = [[] for _ in range(max(layer, default=-1) + 1)]
    for node, index in enumerate(layer):
        layers[index].append(node)
    layers = _order(layers, pred, succ)
    x = _positions(layers, widths, pred, succ, dummies_from=n)
    left = min((x[v] - widths[v] / 2 for row in layers for v in row), default=0.0)
    x = {v: p - left for v, p in x.items()}
    band = [max((sizes[v][1] for v in row if v < n), default=0.0) for row in layers]  # each layer's height
    tops, y = [], 0.0
    for height in band:
        tops.append(y)
        y += height + GAP_Y
    boxes = [Box(x[v], tops[layer[v]] + (band[layer[v]] - sizes[v][1]) / 2, *sizes[v]) for v in range(n)]
    lines = _route(chains, boxes, x, layer, tops, band)
    width = max((x[v] + widths[v] / 2 for row in layers for v in row), default=0.0)
    return Layout(boxes, lines, width, max(y - GAP_Y, 0.0), layers)


def _crossings(upper: list[int], lower: list[int], succ: dict[int, list[int]]) -> int:
    where = {v: i for i, v in enumerate(lower)}
    ends = [(i, where[w]) for i, v in enumerate(upper) for w in succ.get(v, []) if w in where]
    return sum(1 for a in range(len(ends)) for b in range(a + 1, len(ends))
               if (ends[a][0] - ends[b][0]) * (ends[a][1] - ends[b][1]) < 0)


def _order(layers: list[list[int]], pred, succ) -> list[list[int]]:
    """Barycenter sweeps, down then up; the ordering with the fewest crossings wins."""
    def total(rows):
        return sum(_crossings(a, b, succ) for a, b in zip(rows, rows[1:]))

    best, best_count = [list(r) for r in layers], total(layers)
    rows = [list(r) for r in layers]
    for sweep in range(SWEEPS):
        down = sweep % 2 == 0
        indices = range(1, len(rows)) if down else range(len(rows) - 2, -1, -1)
        for i in indices:
            fixed = rows[i - 1] if down else rows[i + 1]
            where = {v: k for k, v in enumerate(fixed)}
            neighbours = pred if down else succ
            current = {v: k for k, v in enumerate(rows[i])}

            def key(v):
                ks = [where[u] for u in neighbours.get(v, []) if u in where]
                return sum(ks) / len(ks) if ks else current[v]

            rows[i].sort(key=key)
        count = total(rows)
        if count < best_count:
            best, best_count = [list(r) for r in rows], count
    return best


def _positions(layers, widths, pred, succ, dummies_from: int) -> dict[int, float]:
    """Each node as near the mean of its neighbours' x (above and below) as the order and widths
    allow, layer by layer, sweeping down and up in turn; then a last sweep down towards the layer
    above alone, so that a chain hangs straight below its head and a lane below its source."""
    x = {}
    for row in layers:
        at = 0.0
        for v in row:
            x[v] = at + widths[v] / 2
            at += widths[v] + GAP_X
    both = {v: pred.get(v, []) + succ.get(v, []) for row in layers for v in row}
    for sweep in range(SWEEPS + 1):
        last = sweep == SWEEPS
        for row in (layers if sweep % 2 == 0 else layers[::-1]):
            wanted = []
            for v in row:  # boxes follow boxes and lanes follow lanes: the main path and long edges run straight
                near = [(x[u], 1.0 if (u >= dummies_from) == (v >= dummies_from) else WEAK)
                        for u in (pred.get(v, []) if last else both[v])]
                pull = sum(w for _, w in near)
                wanted.append(sum(p * w for p, w in near) / pull if near else x[v])
            weights = [WEAK if v >= dummies_from else 1.0 for v in row]  # where they collide, the lane gives way
            for v, p in zip(row, _fit(wanted, weights, [widths[v] for v in row])):
                x[v] = p
    return x


def _fit(wanted: list[float], weights: list[float], widths: list[float]) -> list[float]:
    """Positions p, in order, at least half-widths plus GAP_X apart, minimising the weighted
    squared distance to `wanted`: with offsets o (the tightest packing), q = p - o is an isotonic
    regression of wanted - o, which pool-adjacent-violators solves exactly."""
    offsets, at = [], 0.0
    for i, w in enumerate(widths):
        at += 0.0 if i == 0 else (widths[i - 1] + w) / 2 + GAP_X
        offsets.append(at)
    blocks: list[list[float]] = []  # [weighted sum, weight, count]
    for target, weight, offset in zip(wanted, weights, offsets):
        blocks.append([(target - offset) * weight, weight, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, w, c = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += w
            blocks[-1][2] += c
    q = [s / w for s, w, c in blocks for _ in range(c)]
    return [a + b for a, b in zip(q, offsets)]


def _route(chains, boxes, x, layer, tops, band) -> list[list[tuple[float, float]]]:
    """Each edge leaves its source's bottom and enters its target's top at points spread over
    the box (ordered by where the other end lies, so edges do not cross at the box), goes straight
    down to the edge of its layer's band, and passes skipped layers in its dummies' lanes."""
    out_ends: dict[int, list[int]] = {}
    in_ends: dict[int, list[int]] = {}
    for k, chain in enumerate(chains):
        out_ends.setdefault(chain[0], []).append(k)
        in_ends.setdefault(chain[-1], []).append(k)

    def spread(node: int, ks: list[int], other) -> dict[int, float]:
        ks = sorted(ks, key=lambda k: x[other(chains[k])])
        span = boxes[node].width * 0.6
        return {k: boxes[node].x + (span * (i / (len(ks) - 1) - 0.5) if len(ks) > 1 else 0.0)
                for i, k in enumerate(ks)}

    start, end = {}, {}
    for node, ks in out_ends.items():
        start.update(spread(node, ks, lambda c: c[1]))
    for node, ks in in_ends.items():
        end.update(spread(node, ks, lambda c: c[-2]))
    lines = []
    for k, chain in enumerate(chains):
        src, dst = chain[0], chain[-1]
        points = [(start[k], boxes[src].bottom), (start[k], tops[layer[src]] + band[layer[src]])]
        for v in chain[1:-1]:
            points += [(x[v], tops[layer[v]]), (x[v], tops[layer[v]] + band[layer[v]])]
        points += [(end[k], tops[layer[dst]]), (end[k], boxes[dst].y)]
        lines.append(_dedupe(points))
    return lines


def _dedupe(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out = [points[0]]
    for p in points[1:]:
        if abs(p[0] - out[-1][0]) > 1e-9 or abs(p[1] - out[-1][1]) > 1e-9:
            out.append(p)
    return out
