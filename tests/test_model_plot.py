"""`nnspec plot` of a network: boxes sized to their text, a layered layout whose edges never
cross a box, every edge drawn, 200 dpi PNGs, and DOT for Graphviz. Geometry is checked on the
layout nnspec draws (inches, y down), text widths as matplotlib's renderer measures them."""
import re

import pytest
from PIL import Image

from conftest import ROOT
from nnspec.cli import main
from nnspec.graph_layout import layered_layout
from nnspec.loader import load, loads
from nnspec.plots import DPI, PAD_X, _figure, model_nodes, model_picture

UNET = """model unet {
  input image: float32[32, 32, 3]
  e1 = conv2d(image, 8, 3, padding=same, activation=relu)
  e2 = conv2d(e1, 16, 3, padding=same, activation=relu)
  e3 = conv2d(e2, 32, 3, padding=same, activation=relu)
  bottom = conv2d(e3, 64, 3, padding=same, activation=relu)
  d3 = (bottom, e3) -> concatenate()
  u3 = conv2d(d3, 32, 3, padding=same, activation=relu)
  d2 = (u3, e2) -> concatenate()
  u2 = conv2d(d2, 16, 3, padding=same, activation=relu)
  d1 = (u2, e1) -> concatenate()
  u1 = conv2d(d1, 8, 3, padding=same, activation=relu)
  mask = conv2d(u1, 1, 1, activation=sigmoid)
  output mask
}
"""
INCEPTION = """model inception {
  input image: float32[16, 16, 8]
  a = conv2d(image, 8, 1)
  b1 = conv2d(image, 8, 1)
  b = conv2d(b1, 8, 3, padding=same)
  c1 = conv2d(image, 4, 1)
  c2 = conv2d(c1, 4, 3, padding=same)
  c = conv2d(c2, 4, 3, padding=same)
  d = max_pooling2d(image, 3, strides=1, padding=same)
  joined = (a, b, c, d) -> concatenate()
  flat = global_average_pooling2d(joined)
  out = dense(flat, 10, activation=softmax)
  output out
}
"""
LONG_MLP = "model long_mlp {\n  input x: float32[784]\n" + "".join(
    f"  dense({64 * (1 + i % 3)}, activation=relu)\n" for i in range(16)) + "  dense(10, activation=softmax)\n}\n"


def _analyses():
    return {"residual": load(ROOT / "specs" / "residual.nn").analysis, "unet": loads(UNET, "unet.nn").analysis,
            "inception": loads(INCEPTION, "inception.nn").analysis, "long_mlp": loads(LONG_MLP, "m.nn").analysis}


@pytest.fixture(scope="module")
def pictures():
    fig = _figure(1, 1)
    return {name: (a, model_picture(a, fig.canvas.get_renderer(), fig.dpi)) for name, a in _analyses().items()}


def _inside(point, box, eps=1e-6) -> bool:
    x, y = point
    return box.left + eps < x < box.right - eps and box.y + eps < y < box.bottom - eps


@pytest.mark.parametrize("name", ["residual", "unet", "inception", "long_mlp"])
def test_boxes_hold_their_text_and_overlap_nothing(name, pictures):
    analysis, picture = pictures[name]
    boxes = picture.layout.boxes
    for box, lines in zip(boxes, picture.texts):
        for text, y, width, size in lines:
            assert width + 2 * PAD_X <= box.width + 1e-9, text  # measured text fits, with its padding
            assert box.y < box.y + y - size / 144 and box.y + y + size / 144 < box.bottom, text
    for i, a in enumerate(boxes):
        assert picture.left <= a.left and a.right <= picture.left + picture.width
        assert picture.top <= a.y and a.bottom <= picture.top + picture.height
        for b in boxes[i + 1:]:
            apart = a.right <= b.left or b.right <= a.left or a.bottom <= b.y or b.bottom <= a.y
            assert apart, (a, b)


@pytest.mark.parametrize("name", ["residual", "unet", "inception", "long_mlp"])
def test_every_edge_is_drawn_between_its_boxes_and_crosses_no_other(name, pictures):
    analysis, picture = pictures[name]
    _, edges = model_nodes(analysis)
    boxes = picture.layout.boxes
    assert len(picture.layout.edges) == len(edges) > 0
    for (src, dst), line in zip(edges, picture.layout.edges):
        (x0, y0), (x1, y1) = line[0], line[-1]
        assert y0 == pytest.approx(boxes[src].bottom) and boxes[src].left < x0 < boxes[src].right
        assert y1 == pytest.approx(boxes[dst].y) and boxes[dst].left < x1 < boxes[dst].right
        for (ax, ay), (bx, by) in zip(line, line[1:]):
            assert by >= ay  # edges run downwards: no edge goes back up
            for t in [k / 200 for k in range(201)]:
                point = (ax + t * (bx - ax), ay + t * (by - ay))
                assert not any(_inside(point, box) for box in boxes), (name, src, dst)


def test_long_edges_get_a_lane_in_every_layer_they_pass():
    sizes = [(1.0, 0.5)] * 4
    layout = layered_layout(sizes, [(0, 1), (1, 2), (2, 3), (0, 3)])  # a skip over two layers
    assert [len(row) for row in layout.layers] == [1, 2, 2, 1]  # the skip's two dummy nodes
    skip = layout.edges[3]
    assert len(skip) >= 6 and skip[0][1] == pytest.approx(layout.boxes[0].bottom)
    chain = [b.x for b in layout.boxes[:3]]
    assert max(chain) - min(chain) < 0.5  # the main path stays nearly straight; the skip goes round


def test_barycenter_ordering_removes_crossings():
    # two parallel chains whose second layer is given crossed
    layout = layered_layout([(1.0, 0.5)] * 6, [(0, 3), (1, 2), (2, 5), (3, 4)])
    x = [b.x for b in layout.boxes]
    assert (x[0] < x[1]) == (x[3] < x[2]) == (x[4] < x[5])


def test_plot_writes_a_200_dpi_png_of_the_laid_out_size(tmp_path, pictures, capsys):
    out = tmp_path / "residual.png"
    assert main(["plot", str(ROOT / "specs" / "residual.nn"), "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    picture = pictures["residual"][1]
    with Image.open(out) as image:
        assert DPI == 200 and image.info["dpi"] == pytest.approx((200, 200), abs=0.01)
        assert image.size == pytest.approx((picture.width * 200, picture.height * 200), abs=1)


def test_plot_writes_dot_for_graphviz(tmp_path, capsys):
    (tmp_path / "inception.nn").write_text(INCEPTION)
    out = tmp_path / "model.dot"
    assert main(["plot", str(tmp_path / "inception.nn"), "-o", str(out)]) == 0
    text = out.read_text()
    nodes, edges = model_nodes(loads(INCEPTION, "inception.nn").analysis)
    assert text.startswith('digraph "inception" {\n') and text.endswith("}\n")
    assert text.count("{") == text.count("}") == 1  # no record braces inside labels
    labels = re.findall(r'^  n(\d+) \[label="((?:[^"\\]|\\.)*)"', text, re.M)
    assert [int(i) for i, _ in labels] == list(range(len(nodes)))
    for (_, label), node in zip(labels, nodes):
        assert label.split("\\n")[0] == node["title"] and f"params: {node['params']:,}" in label
    assert re.findall(r"^  n(\d+) -> n(\d+);$", text, re.M) == [(str(a), str(b)) for a, b in edges]
    try:
        import pydot
    except ImportError:
        return
    (graph,) = pydot.graph_from_dot_data(text)
    assert len(graph.get_edges()) == len(edges)
