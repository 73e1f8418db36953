"""The checklist of README's "Adding a layer", enforced: every IR layer kind has an ONNX expansion,
a gradient check, a numpy reference the expansion is checked against, a Keras mapping, a lift rule
(or a refusal with its reason below) and a row in README's generated reference (test_cli keeps
that section equal to `nnspec reference`). A new kind fails
here with the list of what it still lacks."""
from pathlib import Path

import pytest

import reference
import test_layer_gradients
import test_onnx_layers
from convert_support import CATALOG, NOT_LIFTED, catalog_model
from nnspec.backends.onnx import compile  # noqa: F401  (registers every expansion, recurrent ones too)
from nnspec.backends.onnx.layers import LAYERS as EXPANSIONS
from nnspec.ir.layers import LAYERS
from nnspec.reference import BEGIN, END

README = Path(__file__).resolve().parent.parent / "README.md"

# Kinds without a tests/reference.py entry, and where their numbers are checked instead.
NO_NUMPY_REFERENCE = {"Lambda": "an nnspec expression, not a Keras layer: test_onnx_layers.LAMBDAS gives numpy per case"}
# Kinds the ONNX lift cannot give back from a graph without its spec, and why.
NOT_LIFTABLE = {
    "Dropout": "an identity at inference: the graph holds nothing to lift",
    "ActivityRegularization": "an identity at inference: the graph holds nothing to lift",
    "Masking": "ONNX has the mask as ops that are not a layer",
    "Bidirectional": "ONNX has it as recurrent ops and slices that are not one layer",
    "TimeDistributed": "ONNX has it as reshapes around the inner layer's ops",
    "Lambda": "elementwise ONNX ops outside an activation are not gathered into an expression",
    **{kind: "an identity at inference: the graph holds nothing to lift" for kind in (
        "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout",
        "AlphaDropout", "StochasticDepth")},
    **{kind: "ONNX has it as elementwise and reduction ops that the lift does not gather into this layer" for kind in (
        "NotEqual", "Cast", "Rescaling", "Normalization", "UnitNormalization", "LayerScale", "GroupNormalization", "Dot")},
    **{kind: "ONNX has it as MatMul, Softmax and reshapes that the lift does not gather into this layer (nnspec's own "
             "ONNX comes back through the spec it carries)" for kind in (
        "Attention", "AdditiveAttention", "MultiHeadAttention")},
}


def _kinds_in(value) -> set[str]:
    """Layer kinds named anywhere in a list of layer dicts (wrapped layers included)."""
    if isinstance(value, dict):
        return ({value["type"]} if isinstance(value.get("type"), str) else set()) | _kinds_in(list(value.values()))
    if isinstance(value, (list, tuple)):
        return set().union(*(_kinds_in(v) for v in value)) if value else set()
    return set()


def _catalog_kinds(names) -> set[str]:
    return set().union(*({l.type for l in catalog_model(n).layers} for n in names))


def _readme_table() -> str:
    return README.read_text(encoding="utf-8").split(BEGIN)[1].split(END)[0]


GRADIENT_CHECKED = _kinds_in([layers for cases in (test_layer_gradients.CASES, test_layer_gradients.TRAINING_CASES)
                              for _, layers in cases.values()])
CHECKED_AGAINST_REFERENCE = _kinds_in([c[1] for c in test_onnx_layers.CASES])
KERAS_ROUND_TRIPPED = _catalog_kinds(CATALOG)  # test_keras_export writes and reads back every catalog model
LIFTED = _catalog_kinds(set(CATALOG) - NOT_LIFTED)  # test_lift lifts these without their spec


def missing_pieces(kind: str) -> list[str]:
    member = LAYERS.members[kind]
    primary = member.aliases[0] if member.aliases else kind
    checks = {
        "an ONNX expansion (@expands in backends/onnx/layers.py or recurrent.py)": kind in EXPANSIONS,
        "a gradient check (a case in tests/test_layer_gradients.py)": kind in GRADIENT_CHECKED,
        "a numpy reference (tests/reference.py LAYERS)": kind in reference.LAYERS or kind in NO_NUMPY_REFERENCE,
        "a case against the reference (tests/test_onnx_layers.py)":
            kind in CHECKED_AGAINST_REFERENCE or kind in NO_NUMPY_REFERENCE,
        "a Keras mapping (a model in tests/convert_support.CATALOG, or Layer.no_keras)":
            kind in KERAS_ROUND_TRIPPED or member.no_keras is not None,
        "a lift rule (a lifted CATALOG model) or a refusal in NOT_LIFTABLE": kind in LIFTED or kind in NOT_LIFTABLE,
        "a README row (run `nnspec reference` into README's generated section)": f"| `{primary}` |" in _readme_table(),
    }
    return [piece for piece, ok in checks.items() if not ok]


@pytest.mark.parametrize("kind", sorted(LAYERS.members))
def test_layer_kind_has_every_piece(kind):
    missing = missing_pieces(kind)
    assert not missing, f"layer kind {kind} lacks: " + "; ".join(missing)


def test_exemptions_are_real_and_still_needed():
    assert set(NO_NUMPY_REFERENCE) <= set(LAYERS.members) and not set(NO_NUMPY_REFERENCE) & set(reference.LAYERS)
    assert set(NOT_LIFTABLE) <= set(LAYERS.members) and not set(NOT_LIFTABLE) & LIFTED


def test_a_kind_without_pieces_is_reported(monkeypatch):
    """The checklist itself can fail: a kind nothing knows lacks every piece."""
    from nnspec.ir.layers import Flatten

    class Unheard(Flatten):
        aliases = ("unheard",)
        no_keras = None

    monkeypatch.setitem(LAYERS.members, "Unheard", Unheard)
    assert len(missing_pieces("Unheard")) == 7
