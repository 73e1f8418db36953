"""The .nn language: every construct, and every kind of mistake reported at its line and column."""
import pytest

from nnspec.errors import SpecError
from nnspec.loader import loads


def model(body: str, train: str = "", head: str = ""):
    text = f"{head}\nmodel m {{\n{body}\n}}\n" + (f"train {{\n{train}\n}}\n" if train else "")
    return loads(text, "m.nn")


def error(text: str) -> str:
    with pytest.raises(SpecError) as info:
        loads(text, "bad.nn")
    return str(info.value)


def test_sequential_stack_with_constants_and_repeat():
    spec = model("input x: float32[8]\nrepeat 2 { dense(width * 2, activation=relu); dropout(0.1) }\ndense(3)",
                 head="let width = 4")
    assert [l.type for l in spec.model.layers] == ["Dense", "Dropout", "Dense", "Dropout", "Dense"]
    assert spec.model.layers[0].units == 8
    assert [l.name for l in spec.model.layers] == ["dense", "dropout", "dense_1", "dropout_1", "dense_2"]
    assert spec.analysis.output_types[0].shape == (3,)


@pytest.mark.parametrize("written, value", [
    ("1e-3", 1e-3), ("0.5", 0.5), (".5", 0.5), ("-2", -2), ("2.5E+2", 250.0), ("1_000", 1000), ("0x10", 16),
    ("0b101", 5), ("0o17", 15), ("2 ** 3", 8), ("-(1 + 2) * 3", -9), ("7 / 2", 3.5),
])
def test_number_notations(written, value):
    spec = model(f"input x: float32[4]\nlet v = {written}\ndense(1, kernel_initializer=constant(v))")
    assert spec.model.layers[0].kernel_initializer.value == pytest.approx(value)


def test_strings_booleans_lists_tuples_and_comments():
    spec = model(
        "input x: float32[6, 4]  # a comment\n"
        "# a full-line comment\n"
        "reshape((4, 6)); permute([2, 1])\n"
        "lstm(3, return_sequences=True, go_backwards=false, name='rnn')\n"
        'dense(2, name="head")'
    )
    layers = spec.model.layers
    assert layers[0].target_shape == [4, 6] and layers[1].dims == [2, 1]
    assert layers[2].return_sequences is True and layers[2].go_backwards is False
    assert [l.name for l in layers[2:]] == ["rnn", "head"]


def test_keras_aliases_are_accepted():
    spec = model("input x: float32[28, 28, 1]\nConv2D(4, (3, 3), activation='relu')\nMaxPooling2D()\n"
                 "Flatten()\nDense(10, activation=Softmax)", train="loss mse\noptimizer SGD(lr=0.1)")
    assert [l.type for l in spec.model.layers] == ["Conv2D", "MaxPooling2D", "Flatten", "Dense"]
    assert spec.model.train.optimizer.learning_rate == 0.1
    assert spec.model.layers[3].activation.name == "softmax"


def test_named_tensor_graph_with_arrows_and_several_inputs():
    spec = model(
        "input a: float32[4]\ninput b: float32[4]\n"
        "ha = dense(a, 8, activation=relu)\nhb = b -> dense(8) -> dense(8)\n"
        "s = add(ha, hb)\nboth = (s, a) -> concatenate()\nout = both -> dense(2)\nhb -> dense(1, name='aux')\n"
        "output out, aux"
    )
    m = spec.model
    assert m.outputs == ["out", "aux"]
    assert m.layers[-3].inputs == ["s", "a"] and spec.analysis.tensors["both"].shape == (12,)


def test_residual_chain_with_explicit_extra_input():
    spec = model("input x: float32[8]\nh = dense(8)\ny = h -> dense(8) -> add(h)")
    assert spec.model.layers[-1].inputs == ["dense", "h"]


def test_return_state_outputs_are_named_by_tuple_assignment():
    spec = model("input x: float32[5, 3]\nseq, h, c = lstm(4, return_sequences=true, return_state=true)\n"
                 "y = (h, c) -> concatenate() -> dense(1)\noutput y, seq")
    assert spec.analysis.tensors["seq:1"].shape == (4,) and spec.analysis.tensors["seq"].shape == (5, 4)
    assert spec.model.layers[1].inputs == ["seq:1", "seq:2"]


def test_blocks_with_parameters_defaults_and_block_input():
    spec = model(
        "input x: float32[16]\nres(16)\nres(16, act=tanh)",
        head="block res(units, act=relu) {\n  h = dense(units, activation=act)\n  add(h, inputs)\n}",
    )
    kinds = [(l.type, getattr(l, "activation", None) and l.activation.name) for l in spec.model.layers]
    assert kinds == [("Dense", "relu"), ("Add", None), ("Dense", "tanh"), ("Add", None)]
    assert spec.model.layers[1].inputs == ["h", "x"]


def test_activation_written_as_a_layer_and_lambda():
    spec = model("input x: float32[4]\nrelu()\nleaky_relu(0.1)\nlambda(clip(x, 0, c) * 2)", head="let c = 6")
    layers = spec.model.layers
    assert layers[0].type == "Activation" and layers[1].activation.alpha == 0.1
    assert layers[2].expression == "clip(x, 0, 6) * 2"


def test_train_section_settings():
    spec = model(
        "input x: float32[4]\ndense(3, activation=softmax)",
        train="loss categorical_crossentropy(label_smoothing=0.1)\nmetrics [accuracy, top_k(k=2)]\n"
              "optimizer adam(lr=1e-3, amsgrad=true, clipnorm=1.0)\nbatch_size 64; epochs 3\n"
              "validation_split 0.25\nshuffle false\nclass_weight [1, 2, 0.5]\nseed 7\n"
              "callbacks [early_stopping(patience=2), model_checkpoint('best.onnx', save_best_only=true),\n"
              "  reduce_lr_on_plateau(factor=0.5), learning_rate_scheduler(cosine_decay(0.1, 10)),\n"
              "  csv_logger('log.csv'), tensorboard('tb'), terminate_on_nan, history]\n"
              "data npz('train.npz')",
    )
    t = spec.model.train
    assert t.loss.label_smoothing == 0.1 and t.optimizer.amsgrad and t.optimizer.clipnorm == 1.0
    assert [m.name for m in t.metrics] == ["accuracy", "top_k_categorical_accuracy"]
    assert t.class_weight == {0: 1.0, 1: 2.0, 2: 0.5} and t.shuffle is False and t.seed == 7
    assert [c.name for c in t.callbacks][-2:] == ["terminate_on_nan", "history"]
    assert t.data.path == "train.npz"


def test_keras_defaults():
    spec = model("input x: float32[10, 4]\nbatch_norm()\ngru(3)\ndense(2)")
    bn, gru, dense = spec.model.layers
    assert (bn.momentum, bn.epsilon, bn.axis) == (0.99, 1e-3, -1)
    assert gru.reset_after and gru.recurrent_activation.name == "sigmoid" and gru.recurrent_initializer.name == "orthogonal"
    assert dense.kernel_initializer.name == "glorot_uniform" and dense.bias_initializer.name == "zeros"
    assert spec.model.train is None


# ---- parameter counts equal Keras's ---------------------------------------------------------------------------

@pytest.mark.parametrize("body, total, non_trainable", [
    ("input x: float32[5, 3]\ngru(4)", 4 * 3 * (3 + 4) + 2 * 12, 0),
    ("input x: float32[5, 3]\ngru(4, reset_after=false)", 4 * 3 * (3 + 4) + 12, 0),
    ("input x: float32[5, 3]\nsimple_rnn(4)", 3 * 4 + 16 + 4, 0),
    ("input x: float32[5, 3]\nbidirectional(lstm(4))", 2 * (4 * 4 * (3 + 4) + 16), 0),
    ("input x: float32[5, 3]\ntime_distributed(dense(2))", 8, 0),
    ("input x: int32[7]\nembedding(100, 8)", 800, 0),
    ("input x: float32[9, 2]\nconv1d(4, 3, groups=2)", 3 * 1 * 4 + 4, 0),
    ("input x: float32[6, 8]\nbatch_norm()\nlayer_norm()", 4 * 8 + 2 * 8, 16),
    ("input x: float32[5, 8]\nmulti_head_attention(x, x, 2, 4)", 4 * (8 * 2 * 4 + 8), 0),
    ("input x: float32[5, 8]\nmulti_head_attention(x, x, 2, 3, value_dim=5, output_shape=6)",
     2 * (8 * 6 + 6) + (8 * 10 + 10) + (10 * 6 + 6), 0),
    ("input x: float32[4, 6]\nadditive_attention(x, x)", 6, 0),
    ("input x: float32[4, 6]\nattention(x, x, use_scale=true, score_mode=concat)", 2, 0),
])
def test_parameter_counts(body, total, non_trainable):
    spec = model(body)
    assert (spec.analysis.total, spec.analysis.non_trainable) == (total, non_trainable)


@pytest.mark.parametrize("body, shape", [
    ("input x: float32[28, 28, 1]\nconv2d(8, 3, strides=2, padding=same)", (14, 14, 8)),
    ("input x: float32[27, 27, 1]\nconv2d(8, 3, strides=2)", (13, 13, 8)),
    ("input x: float32[10, 10, 2]\nconv2d(4, 3, dilation_rate=2)", (6, 6, 4)),
    ("input x: float32[9, 2]\nconv1d(4, 3, padding=causal)", (9, 4)),
    ("input x: float32[7, 7, 3]\nmax_pool2d(2, padding=same)", (4, 4, 3)),
    ("input x: float32[7, 3]\navg_pool1d(3, strides=2)", (3, 3)),
    ("input x: float32[7, 7, 3]\nglobal_avg_pool2d(keepdims=true)", (1, 1, 3)),
    ("input x: float32[?, 3]\nlstm(4, return_sequences=true)", (None, 4)),
    ("input x: float32[6]\nrepeat_vector(3)", (3, 6)),
    ("input x: float32[2, 3, 4]\npermute([3, 1, 2])", (4, 2, 3)),
    ("input x: float32[12]\nreshape([3, -1])", (3, 4)),
    ("input x: float32[5, 3]\nbidirectional(gru(2, return_sequences=true), merge_mode=sum)", (5, 2)),
])
def test_shape_rules(body, shape):
    assert model(body).analysis.output_types[0].shape == shape


# ---- errors -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, where, fragment", [
    ("model m {\n  input x: float32[4]\n  dense(4\n}\n", "bad.nn:4:1", "expected ',' or ')' before '}'"),
    ("model m {\n  input x: float32[4]\n  dense(3 activation=relu)\n}\n", "bad.nn:3:11",
     "error: expected ',' or ')' before 'activation'\n"),
    ("model m {\n  input x: float32[4]\n  dens(4)\n}\n", "bad.nn:3:3", "unknown layer 'dens'; did you mean 'dense'?"),
    ("model m {\n  input x: float32[4]\n  dense(4, activaton=relu)\n}\n", "bad.nn:3:12",
     "has no argument 'activaton'; did you mean 'activation'?"),
    ("model m {\n  input x: float32[4]\n  dense(4, activation=relux)\n}\n", "bad.nn:3:12",
     "unknown activation 'relux'; did you mean 'relu'?"),
    ("model m {\n  input x: float32[4]\n  dense(units=-3)\n}\n", "bad.nn:3:9", "units: input should be greater than 0"),
    ("model m {\n  input x: float32[4]\n  dense()\n}\n", "bad.nn:3:3", "missing required argument 'units'"),
    ("model m {\n  input x: float32[4]\n  dropout(rate='high')\n}\n", "bad.nn:3:11", "rate: input should be a valid number"),
    ("model m {\n  input x: float32[4]\n  conv2d(3, 3)\n}\n", "bad.nn:3:3", "Conv2D needs an input of rank 4"),
    ("model m {\n  input x: float32[4]\n  h = dense(3)\n  y = dense(x, 2)\n  output y\n}\n", "bad.nn:3:7",
     "the output of layer 'h' is never used"),
    ("model m {\n  input x: float32[4]\n  y = hx -> dense(2)\n}\n", "bad.nn:3:7", "unknown tensor 'hx'"),
    ("model m {\n  input x: float32[4]\n  dense(1, activation=sigmoid)\n}\ntrain {\n  loss categorical_crossentropy\n}\n",
     "bad.nn:6:8", "use binary_crossentropy"),
    ("model m {\n  input x: float32[4]\n  dense(1)\n}\ntrain {\n  los mse\n}\n", "bad.nn:6:3",
     "unknown training setting 'los'; did you mean 'loss'?"),
    ("model m {\n  input x: float32[4]\n  dense(1)\n}\ntrain {\n  optimizer adamm\n}\n", "bad.nn:6:13",
     "unknown optimizer 'adamm'; did you mean 'adam'?"),
    ("model m {\n  input x: float32[4]\n  dense(1, kernel_regularizer=l2(-1))\n}\n", "bad.nn:3:12",
     "kernel_regularizer: input should be greater than or equal to 0"),
    ("model m {\n  input x: floot32[4]\n}\n", "bad.nn:2:12", "unknown dtype 'floot32'; did you mean 'float32'?"),
    ("model m {\n  input x: float32[4]\n  dense(1)\n}\ntrain {\n  optimizer adma\n}\n", "bad.nn:6:13",
     "unknown optimizer 'adma'; did you mean 'adam'?"),
    ("model m {\n  input x: float32[4]\n  dense(1)\n}\ntrain {\n  augment image_data_generator(chanel_shift_range=2)\n}\n",
     "bad.nn:6:11", "augment: image_data_generator() has no argument 'chanel_shift_range'; did you mean 'channel_shift_range'?"),
    ("model m {\n  input a: float32[4]\n  input b: float32[4]\n  dense(2)\n}\n", "bad.nn:4:3", "needs an input tensor"),
    ("model m {\n  input x: float32[4]\n  add(x)\n}\n", "bad.nn:3:3", "Add takes at least 2 input tensor(s)"),
    ("model m {\n  input x: float32[4]\n  lambda(x + y)\n}\n", "bad.nn:3:10", "unknown name 'y' in lambda"),
    ("model m {\n  input x: float32[4]\n  lambda(__import__(x))\n}\n", "bad.nn:3:10", "is not allowed in a lambda"),
    ("model m {\n  input x: float32[4]\n  dense(2 + relu)\n}\n", "bad.nn:3:9", "arithmetic needs numbers"),
    ("model m {\n  input x: float32[4]\n  @\n}\n", "bad.nn:3:3", "unexpected character '@'"),
    ("model m {\n  input x: float32[3, 4]\n  mha(x, x, 2, 2, attention_axes=[2])\n}\n", "bad.nn:3:19",
     "nnspec attends over the time axis only"),
    ("model m {\n  input q: float32[3, 4]\n  input v: float32[5, 6]\n  attention(q, v)\n}\n", "bad.nn:4:3",
     "Attention needs query and key of one feature size"),
    ("model m {\n  input x: float32[3, 4]\n  input m: bool[3, 4]\n  mha(x, x, x, m, 2, 2)\n}\n", "bad.nn:4:3",
     "attention_mask must be (batch, 3, 3)"),
    ("model m {\n  input x: float32[4]\n  dense(4)\n", "bad.nn:4:1", "unexpected end of file"),
])
def test_errors_point_at_the_mistake(text, where, fragment):
    message = error(text)
    first = message.splitlines()[0]
    assert first.startswith(where + ": error: "), message
    assert fragment in message, message


@pytest.mark.parametrize("a, b, distance", [("adma", "adam", 1), ("adma", "adamax", 2), ("", "abc", 3),
                                             ("kitten", "sitting", 3), ("ca", "abc", 3), ("relux", "relu", 1)])
def test_edit_distance_counts_a_swap_as_one(a, b, distance):
    from nnspec.errors import edit_distance

    assert edit_distance(a, b) == edit_distance(b, a) == distance


@pytest.mark.parametrize("name, suggestion", [("adma", "adam"), ("Adam", "adam"), ("nadm", "nadam"),
                                              ("sgdd", "sgd"), ("adamm", "adam"),
                                              ("xyzzy", None), ("ad", None)])
def test_did_you_mean_takes_the_nearest_name_within_a_third_of_its_length(name, suggestion):
    from nnspec.errors import did_you_mean

    names = ["adam", "adamax", "nadam", "adamw", "sgd", "rmsprop"]
    assert did_you_mean(name, names) == (f"; did you mean '{suggestion}'?" if suggestion else "")


def test_error_shows_source_line_and_caret():
    message = error("model m {\n  input x: float32[4]\n  dens(4)\n}\n")
    assert message.splitlines()[1:] == ["      dens(4)", "      ^^^^"]


def test_several_independent_errors_are_all_reported():
    message = error("model m {\n  input x: float32[4]\n  dens(4)\n  dense(4, activation=relux)\n  dropot(0.1)\n}\n")
    lines = [l for l in message.splitlines() if ": error: " in l]
    assert [l.split(": error:")[0] for l in lines] == ["bad.nn:3:3", "bad.nn:4:12", "bad.nn:5:3"]


def test_error_count_is_capped():
    body = "\n".join("  dens(4)" for _ in range(50))
    message = error(f"model m {{\n  input x: float32[4]\n{body}\n}}\n")
    assert message.count(": error: ") == 20


def test_recursive_block_is_an_error_not_a_crash():
    message = error("block b(n) { b(n) }\nmodel m {\n  input x: float32[4]\n  b(1)\n}\n")
    assert "nest deeper than" in message


def test_shapes_incompatible_in_merge():
    message = error("model m {\n  input x: float32[4]\n  a = dense(3)\n  b = dense(x, 2)\n  y = add(a, b)\n}\n")
    assert ("bad.nn:5:7: error: Add needs inputs of one shape (or sizes of 1, which broadcast), got (None, 3), "
            "(None, 2)") in message
