"""Tests for darts_nas.genotype: derivation rule, text/JSON formats, published cells, safe parsing, loading."""

import builtins
import itertools
import json
import random

import pytest
import torch

from darts_nas.errors import DartsNasError
from darts_nas.genotypes import (
    CNN_OPS, PRIMITIVES, PUBLISHED, Genotype, derive_cell, derive_genotype, get_genotype, literal_fields,
    load_genotype, parse_genotype, save_genotype,
)

# The genotypes exactly as the papers / reference code bases print them.
PUBLISHED_TEXT = {
    "DARTS_V1": "DARTS_V1 = Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])",  # noqa: E501
    "DARTS_V2": "DARTS_V2 = Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])",  # noqa: E501
    "NASNet": "NASNet = Genotype(normal=[('sep_conv_5x5', 1), ('sep_conv_3x3', 0), ('sep_conv_5x5', 0), ('sep_conv_3x3', 0), ('avg_pool_3x3', 1), ('skip_connect', 0), ('avg_pool_3x3', 0), ('avg_pool_3x3', 0), ('sep_conv_3x3', 1), ('skip_connect', 1)], normal_concat=[2, 3, 4, 5, 6], reduce=[('sep_conv_5x5', 1), ('sep_conv_7x7', 0), ('max_pool_3x3', 1), ('sep_conv_7x7', 0), ('avg_pool_3x3', 1), ('sep_conv_5x5', 0), ('skip_connect', 3), ('avg_pool_3x3', 2), ('sep_conv_3x3', 2), ('max_pool_3x3', 1)], reduce_concat=[4, 5, 6])",  # noqa: E501
    "AmoebaNet": "AmoebaNet = Genotype(normal=[('avg_pool_3x3', 0), ('max_pool_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_5x5', 2), ('sep_conv_3x3', 0), ('avg_pool_3x3', 3), ('sep_conv_3x3', 1), ('skip_connect', 1), ('skip_connect', 0), ('avg_pool_3x3', 1)], normal_concat=[4, 5, 6], reduce=[('avg_pool_3x3', 0), ('sep_conv_3x3', 1), ('max_pool_3x3', 0), ('sep_conv_7x7', 2), ('sep_conv_7x7', 0), ('avg_pool_3x3', 1), ('max_pool_3x3', 0), ('max_pool_3x3', 1), ('conv_7x1_1x7', 0), ('sep_conv_3x3', 5)], reduce_concat=[3, 4, 6])",  # noqa: E501
    "PC_DARTS": "PC_DARTS = Genotype(normal=[('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 0), ('dil_conv_3x3', 1), ('sep_conv_5x5', 0), ('sep_conv_3x3', 1), ('avg_pool_3x3', 0), ('dil_conv_3x3', 1)], normal_concat=range(2, 6), reduce=[('sep_conv_5x5', 1), ('max_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_5x5', 2), ('sep_conv_3x3', 0), ('sep_conv_3x3', 3), ('sep_conv_3x3', 1), ('sep_conv_3x3', 2)], reduce_concat=range(2, 6))",  # noqa: E501
    "PDARTS": "PDARTS = Genotype(normal=[('skip_connect', 0), ('dil_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('sep_conv_3x3', 3), ('sep_conv_3x3', 0), ('dil_conv_5x5', 4)], normal_concat=range(2, 6), reduce=[('avg_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_3x3', 0), ('dil_conv_5x5', 2), ('max_pool_3x3', 0), ('dil_conv_3x3', 1), ('dil_conv_3x3', 1), ('dil_conv_5x5', 3)], reduce_concat=range(2, 6))",  # noqa: E501
}

OP = {name: k for k, name in enumerate(PRIMITIVES)}


def n_edges(steps):
    return sum(i + 2 for i in range(steps))


def edge(node, state):
    """Row of the edge state -> node in the DARTS edge order."""
    return sum(k + 2 for k in range(node)) + state


def small_genotype(**overrides):
    fields = dict(normal=[("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("skip_connect", 0), ("dil_conv_3x3", 2),
                          ("max_pool_3x3", 1), ("avg_pool_3x3", 3), ("sep_conv_5x5", 4), ("dil_conv_5x5", 0)],
                  normal_concat=range(2, 6),
                  reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
                          ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)],
                  reduce_concat=[2, 3, 4, 5])
    fields.update(overrides)
    return Genotype(**fields)


def reject(fragment, fn, *args, **kwargs):
    with pytest.raises(DartsNasError) as info:
        fn(*args, **kwargs)
    assert fragment in str(info.value), str(info.value)
    return str(info.value)


# ------------------------------------------------------------------------------------------------------------
# constants
# ------------------------------------------------------------------------------------------------------------
def test_primitive_order_and_cnn_ops():
    assert PRIMITIVES == ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
                          "dil_conv_3x3", "dil_conv_5x5")
    assert "none" not in CNN_OPS
    assert CNN_OPS == PRIMITIVES[1:] + ("sep_conv_7x7", "conv_7x1_1x7")


# ------------------------------------------------------------------------------------------------------------
# derivation: hand-made weights with hand-computed answers
# ------------------------------------------------------------------------------------------------------------
def hand_weights():
    w = torch.zeros(14, 8)
    # node 0: state 0 is dominated by 'none' (0.9) but its best real op is sep_conv_3x3 at 0.05;
    #         state 1 has sep_conv_5x5 at 0.3 -> kept strongest first: (sep_conv_5x5, 1), (sep_conv_3x3, 0)
    w[edge(0, 0), OP["none"]] = 0.9
    w[edge(0, 0), OP["sep_conv_3x3"]] = 0.05
    w[edge(0, 0), OP["max_pool_3x3"]] = 0.01
    w[edge(0, 1), OP["sep_conv_5x5"]] = 0.3
    # node 1: state 0 has 'none' 0.97 (would rank first if 'none' counted) and skip 0.03;
    #         state 1 dil_conv_3x3 0.2, state 2 avg_pool 0.1 -> (dil_conv_3x3, 1), (avg_pool_3x3, 2)
    w[edge(1, 0), OP["none"]] = 0.97
    w[edge(1, 0), OP["skip_connect"]] = 0.03
    w[edge(1, 1), OP["dil_conv_3x3"]] = 0.2
    w[edge(1, 2), OP["avg_pool_3x3"]] = 0.1
    # node 2: exact edge tie between state 1 (sep_conv_3x3 0.4) and state 3 (skip 0.4); state 2 0.39, state 0 0.1
    #         -> lower state first: (sep_conv_3x3, 1), (skip_connect, 3)
    w[edge(2, 0), OP["dil_conv_5x5"]] = 0.1
    w[edge(2, 1), OP["sep_conv_3x3"]] = 0.4
    w[edge(2, 2), OP["max_pool_3x3"]] = 0.39
    w[edge(2, 3), OP["skip_connect"]] = 0.4
    # node 3: exact op ties: state 4 sep_conv_5x5 == dil_conv_5x5 == 0.5 -> sep_conv_5x5 (earlier);
    #         state 2 max_pool == avg_pool == 0.3 -> max_pool; others 0.1 -> (sep_conv_5x5, 4), (max_pool_3x3, 2)
    for s in (0, 1, 3):
        w[edge(3, s), OP["sep_conv_3x3"]] = 0.1
    w[edge(3, 4), OP["sep_conv_5x5"]] = 0.5
    w[edge(3, 4), OP["dil_conv_5x5"]] = 0.5
    w[edge(3, 2), OP["max_pool_3x3"]] = 0.3
    w[edge(3, 2), OP["avg_pool_3x3"]] = 0.3
    return w


HAND_EXPECTED = [("sep_conv_5x5", 1), ("sep_conv_3x3", 0),
                 ("dil_conv_3x3", 1), ("avg_pool_3x3", 2),
                 ("sep_conv_3x3", 1), ("skip_connect", 3),
                 ("sep_conv_5x5", 4), ("max_pool_3x3", 2)]


def test_derive_cell_hand_made():
    assert derive_cell(hand_weights()) == HAND_EXPECTED


def test_derive_cell_all_equal_weights_picks_lowest_states_and_first_real_op():
    cell = derive_cell(torch.full((14, 8), 0.125))
    assert cell == [("max_pool_3x3", 0), ("max_pool_3x3", 1)] * 4


def test_derive_cell_keep_one():
    assert derive_cell(hand_weights(), keep=1) == HAND_EXPECTED[0::2]


def test_derive_cell_five_nodes():
    w = torch.zeros(20, 8)
    w[:, OP["none"]] = 0.5  # 'none' everywhere must change nothing
    # node 4 (states 0..5): state 5 sep_conv_3x3 0.6, state 4 dil_conv_5x5 0.5, state 0 skip 0.45
    w[edge(4, 5), OP["sep_conv_3x3"]] = 0.6
    w[edge(4, 4), OP["dil_conv_5x5"]] = 0.5
    w[edge(4, 0), OP["skip_connect"]] = 0.45
    # node 3 (states 0..4): state 3 avg_pool 0.2 beats the all-zero rest
    w[edge(3, 3), OP["avg_pool_3x3"]] = 0.2
    cell = derive_cell(w, steps=5)
    assert cell == [("max_pool_3x3", 0), ("max_pool_3x3", 1),
                    ("max_pool_3x3", 0), ("max_pool_3x3", 1),
                    ("max_pool_3x3", 0), ("max_pool_3x3", 1),
                    ("avg_pool_3x3", 3), ("max_pool_3x3", 0),
                    ("sep_conv_3x3", 5), ("dil_conv_5x5", 4)]
    g = derive_genotype(w, w, steps=5)
    assert g.normal == tuple(cell) and g.reduce == tuple(cell)
    assert g.normal_concat == g.reduce_concat == (2, 3, 4, 5, 6)


def test_derive_does_not_apply_softmax_itself():
    # Raw alphas: state 0 has 2.0 on every real op, state 1 has 1.5 on one op. Ranked raw, state 0 wins;
    # after softmax state 1's single peak (~0.39) beats state 0's spread-out 2.0s (~0.14).
    alpha = torch.zeros(14, 8)
    alpha[edge(0, 0), 1:] = 2.0
    alpha[edge(0, 1), OP["sep_conv_3x3"]] = 1.5
    assert derive_cell(alpha)[:2] == [("max_pool_3x3", 0), ("sep_conv_3x3", 1)]
    assert derive_cell(torch.softmax(alpha, -1))[:2] == [("sep_conv_3x3", 1), ("max_pool_3x3", 0)]


def test_derive_dtypes_and_grad_agree():
    w = hand_weights()
    for dtype in (torch.float64, torch.float16, torch.bfloat16):
        assert derive_cell(w.to(dtype)) == HAND_EXPECTED, dtype
    assert derive_cell(w.clone().requires_grad_(True)) == HAND_EXPECTED


def test_derive_genotype_builds_valid_genotype():
    g = derive_genotype(hand_weights(), torch.full((14, 8), 0.125))
    assert g.normal == tuple(HAND_EXPECTED)
    assert g.reduce == (("max_pool_3x3", 0), ("max_pool_3x3", 1)) * 4
    assert g.normal_concat == g.reduce_concat == (2, 3, 4, 5)


def test_derive_rejects_bad_weights():
    reject("shape (13, 8)", derive_cell, torch.zeros(13, 8))
    reject("needs (14, 8)", derive_cell, torch.zeros(14, 7))
    reject("needs (20, 8)", derive_cell, torch.zeros(14, 8), steps=5)
    bad = torch.zeros(14, 8)
    bad[3, 2] = float("nan")
    reject("NaN", derive_cell, bad)
    reject("keep must be 1 or 2", derive_cell, torch.zeros(14, 8), keep=3)
    msg = reject("reduce cell:", derive_genotype, torch.zeros(14, 8), torch.zeros(2, 8))
    assert "shape (2, 8)" in msg


# ------------------------------------------------------------------------------------------------------------
# derivation: random alphas vs an independent brute force
# ------------------------------------------------------------------------------------------------------------
def brute_force_cell(rows, primitives, steps):
    """Independent reimplementation: enumerate every ordered pair of input edges and keep the best one."""
    real = [k for k, p in enumerate(primitives) if p != "none"]
    out = []
    start = 0
    for node in range(steps):
        n = node + 2
        node_rows = rows[start:start + n]
        start += n
        strength = [max(r[k] for k in real) for r in node_rows]
        best_op = [sorted(real, key=lambda k: (-r[k], k))[0] for r in node_rows]
        best_pair, best_key = None, None
        for a, b in itertools.permutations(range(n), 2):
            # a must legitimately come before b: stronger, or equally strong with a lower state index
            if not (strength[a] > strength[b] or (strength[a] == strength[b] and a < b)):
                continue
            key = (strength[a], strength[b], -a, -b)
            if best_key is None or key > best_key:
                best_pair, best_key = (a, b), key
        out += [(primitives[best_op[j]], j) for j in best_pair]
    return out


@pytest.mark.parametrize("seed", range(6))
def test_derive_matches_brute_force_on_softmax_of_random_alphas(seed):
    gen = torch.Generator().manual_seed(seed)
    steps = 4 if seed % 2 == 0 else 5
    alpha = torch.randn(n_edges(steps), len(PRIMITIVES), generator=gen) * 2
    weights = torch.softmax(alpha, dim=-1)
    expected = brute_force_cell(weights.double().tolist(), PRIMITIVES, steps)
    assert derive_cell(weights, steps=steps) == expected


@pytest.mark.parametrize("seed", range(6))
def test_derive_matches_brute_force_with_many_ties(seed):
    rng = random.Random(seed)
    steps = 4 + seed % 2
    rows = [[rng.choice([0.0, 0.25, 0.5]) for _ in PRIMITIVES] for _ in range(n_edges(steps))]
    assert derive_cell(torch.tensor(rows), steps=steps) == brute_force_cell(rows, PRIMITIVES, steps)


# ------------------------------------------------------------------------------------------------------------
# published genotypes and formats
# ------------------------------------------------------------------------------------------------------------
def test_published_names():
    assert set(PUBLISHED) == {"DARTS_V1", "DARTS_V2", "DARTS", "NASNet", "AmoebaNet", "PC_DARTS", "PDARTS",
                              "UNAS_CIFAR10", "UNAS_CIFAR100", "UNAS_IMAGENET", "SHARP_DARTS", "SHARPSEPCONV_DARTS",
                              "SHARPSEPCONV_DARTS_MAX_W", "SHARP_DARTS_MAX_W", "SHARPER_SCALAR", "SHARPER_MAX_W"}
    assert PUBLISHED["DARTS"] == PUBLISHED["DARTS_V2"]


@pytest.mark.parametrize("name", sorted(PUBLISHED_TEXT))
def test_published_text_parses_to_published_values(name):
    g = parse_genotype(PUBLISHED_TEXT[name])
    assert g == PUBLISHED[name]
    # field-by-field against the literal text, independently of the module's own constants
    text = PUBLISHED_TEXT[name].split("=", 1)[1]
    fields = literal_fields(text)
    assert g.normal == tuple(tuple(e) for e in fields["normal"])
    assert g.reduce == tuple(tuple(e) for e in fields["reduce"])
    assert g.normal_concat == tuple(fields["normal_concat"])
    assert g.reduce_concat == tuple(fields["reduce_concat"])


def test_published_spot_checks():
    v2 = parse_genotype(PUBLISHED_TEXT["DARTS_V2"])
    assert v2.normal[7] == ("dil_conv_3x3", 2)
    assert v2.reduce[3] == ("max_pool_3x3", 1)
    amoeba = parse_genotype(PUBLISHED_TEXT["AmoebaNet"])
    assert amoeba.reduce_concat == (3, 4, 6)
    assert amoeba.normal_concat == (4, 5, 6)
    assert amoeba.reduce[8] == ("conv_7x1_1x7", 0)
    assert amoeba.reduce[9] == ("sep_conv_3x3", 5)
    nasnet = parse_genotype(PUBLISHED_TEXT["NASNet"])
    assert len(nasnet.normal) == 10 and nasnet.normal_concat == (2, 3, 4, 5, 6)
    assert nasnet.reduce[1] == ("sep_conv_7x7", 0)
    assert parse_genotype(PUBLISHED_TEXT["PDARTS"]).normal[7] == ("dil_conv_5x5", 4)
    assert parse_genotype(PUBLISHED_TEXT["PC_DARTS"]).reduce_concat == (2, 3, 4, 5)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_text_round_trip(name):
    g = PUBLISHED[name]
    text = g.to_text()
    g2 = Genotype.from_text(text)
    assert g2 == g
    assert g2.to_text() == text
    assert Genotype.from_text(g2.to_text()) == g
    assert str(g) == text


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_dict_json_round_trip(name):
    g = PUBLISHED[name]
    s = json.dumps(g.to_dict())
    d = json.loads(s)
    assert d == g.to_dict()
    assert Genotype.from_dict(d) == g


def test_to_text_exact_format():
    assert PUBLISHED["DARTS_V2"].to_text() == (
        "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
        "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
        "normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
        "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
        "reduce_concat=range(2, 6))")
    assert "reduce_concat=[3, 4, 6])" in PUBLISHED["AmoebaNet"].to_text()
    assert "reduce_concat=range(4, 7))" in PUBLISHED["NASNet"].to_text()


def test_to_dict_shape():
    d = PUBLISHED["DARTS_V2"].to_dict()
    assert list(d) == ["normal", "normal_concat", "reduce", "reduce_concat"]
    assert d["normal"][7] == ["dil_conv_3x3", 2]
    assert d["normal_concat"] == [2, 3, 4, 5]


def test_range_and_list_concat_equal():
    body = "normal=[('sep_conv_3x3', 0), ('skip_connect', 1)], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)]"
    a = parse_genotype(f"Genotype({body}, normal_concat=range(2, 3), reduce_concat=range(2, 3))")
    b = parse_genotype(f"Genotype({body}, normal_concat=[2], reduce_concat=(2,))")
    assert a == b and a.normal_concat == (2,)
    full_range = PUBLISHED_TEXT["DARTS_V2"].replace("[2, 3, 4, 5]", "range(2, 6)")
    assert parse_genotype(full_range) == parse_genotype(PUBLISHED_TEXT["DARTS_V2"])
    assert small_genotype(normal_concat=[2, 3, 4, 5]) == small_genotype(normal_concat=range(2, 6))


def test_lists_normalized_to_tuples_and_hashable():
    g = small_genotype()
    assert isinstance(g.normal, tuple) and all(isinstance(e, tuple) for e in g.normal)
    assert isinstance(g.normal_concat, tuple)
    assert hash(g) == hash(small_genotype())
    with pytest.raises(AttributeError):
        g.normal = ()  # frozen


def test_text_variants_accepted():
    text = PUBLISHED["PDARTS"].to_text()
    g = PUBLISHED["PDARTS"]
    assert parse_genotype("  \n" + text + "\n\n") == g
    assert parse_genotype("genotypes.Genotype" + text[len("Genotype"):]) == g
    multiline = text.replace("), (", "),\n    (").replace(", reduce=", ",\n reduce=")
    assert parse_genotype(multiline + "  # from the paper\n") == g


# ------------------------------------------------------------------------------------------------------------
# validation errors
# ------------------------------------------------------------------------------------------------------------
def normal_with(index, entry):
    normal = list(small_genotype().normal)
    normal[index] = entry
    return normal


def test_reject_unknown_op():
    msg = reject("normal[3]: unknown op 'sep_conv_9x9'", small_genotype, normal=normal_with(3, ("sep_conv_9x9", 1)))
    assert "sep_conv_7x7" in msg  # lists the known ops


def test_reject_none_op():
    reject("reduce[2]: 'none'", small_genotype, reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("none", 2),
                                                        ("max_pool_3x3", 1)], reduce_concat=[2, 3])


def test_reject_input_too_large():
    reject("normal[5] = ('sep_conv_3x3', 4): node 2 can take inputs 0..3 only", small_genotype,
           normal=normal_with(5, ("sep_conv_3x3", 4)))
    reject("normal[0] = ('skip_connect', 2): node 0 can take inputs 0..1 only", small_genotype,
           normal=normal_with(0, ("skip_connect", 2)))


def test_reject_negative_input():
    msg = reject("normal[1] = ('sep_conv_3x3', -1)", parse_genotype,
                 PUBLISHED_TEXT["DARTS_V2"].replace("('sep_conv_3x3', 1)", "('sep_conv_3x3', -1)", 1))
    assert "negative" in msg and "node 0 can take inputs 0..1 only" in msg


def test_reject_odd_length_and_empty():
    reject("normal: 7 entries; a cell lists 2 inputs per node (even length)", small_genotype,
           normal=list(small_genotype().normal)[:7])
    reject("reduce: empty", small_genotype, reduce=[])


def test_reject_bad_entries():
    reject("normal[2]: entry must be an (op, input) pair", small_genotype, normal=normal_with(2, "sep_conv_3x3"))
    reject("normal[2]: entry must be an (op, input) pair", small_genotype,
           normal=normal_with(2, ("sep_conv_3x3", 0, 1)))
    reject("normal[4]: input index must be an int (not bool)", small_genotype,
           normal=normal_with(4, ("sep_conv_3x3", True)))
    reject("normal[4]: input index must be an int", small_genotype, normal=normal_with(4, ("sep_conv_3x3", "1")))
    reject("normal[4]: op must be a string", small_genotype, normal=normal_with(4, (3, 1)))
    reject("normal: must be a list", small_genotype, normal="sep_conv_3x3")


def test_reject_bad_concat():
    reject("normal_concat: 7 is not a node of a 4-node cell (allowed 2..5)", small_genotype,
           normal_concat=[2, 3, 7])
    reject("reduce_concat: 1 is not a node of a 4-node cell (allowed 2..5)", small_genotype,
           reduce_concat=range(1, 5))
    reject("normal_concat: 3 is listed twice", small_genotype, normal_concat=[2, 3, 3])
    reject("normal_concat: empty", small_genotype, normal_concat=[])
    reject("normal_concat[0]: must be an int (not bool)", small_genotype, normal_concat=[True])
    reject("normal_concat: must be range(a, b) or a list of ints", small_genotype, normal_concat="2345")


def test_nasnet_style_concat_valid():
    g = small_genotype(normal_concat=[3, 5], reduce_concat=[5, 2])
    assert g.normal_concat == (3, 5) and g.reduce_concat == (5, 2)


# ------------------------------------------------------------------------------------------------------------
# safe parsing
# ------------------------------------------------------------------------------------------------------------
GOOD_REST = ("normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
             "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
             "('max_pool_3x3', 1)], reduce_concat=range(2, 6)")
GOOD_NORMAL = ("[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
               "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)]")


def test_good_rest_parses():
    assert parse_genotype(f"Genotype(normal={GOOD_NORMAL}, {GOOD_REST})") == PUBLISHED["DARTS_V2"]


def test_reject_malformed_text():
    msg = reject("malformed genotype text:", parse_genotype, "Genotype(normal=[('sep_conv_3x3', 0)")
    assert "Traceback" not in msg
    reject("malformed genotype text:", parse_genotype, "")
    reject("malformed genotype text:", parse_genotype, "Genotype(normal=[(]")


def test_import_in_text_is_rejected_and_not_executed(tmp_path, monkeypatch):
    sentinel = tmp_path / "SENTINEL"
    calls = []
    monkeypatch.setattr(builtins, "eval", lambda *a, **k: calls.append("eval"))
    monkeypatch.setattr(builtins, "exec", lambda *a, **k: calls.append("exec"))
    payload = f"__import__('os').system('touch {sentinel}')"
    for text in (f"Genotype(normal={payload}, {GOOD_REST})",
                 f"Genotype(normal=[('sep_conv_3x3', {payload})], {GOOD_REST})",
                 f"{payload}",
                 f"Genotype(normal={GOOD_NORMAL}, {GOOD_REST}); {payload}"):
        with pytest.raises(DartsNasError) as info:
            parse_genotype(text)
        assert "not allowed" in str(info.value) or "statements" in str(info.value), str(info.value)
    msg = reject("not allowed", parse_genotype, f"Genotype(normal={payload}, {GOOD_REST})")
    assert "__import__" in msg
    assert not sentinel.exists()
    assert calls == []


@pytest.mark.parametrize("value,fragment", [
    ("normal_list", "the name 'normal_list'"),
    ("(lambda: 1)()", "a call"),
    ("[('sep_conv_3x3', 0 + 1)]", "arithmetic"),
    ("[(f'sep_conv_{3}x3', 0)]", "f-string"),
    ("[('sep_conv_3x3', None)]", "the constant None"),
    ("[('sep_conv_3x3', 1.0)]", "the constant 1.0"),
    ("{'a': 1}", "a dict"),
    ("[x for x in 'ab']", "comprehension"),
    ("open('/etc/passwd').read()", "not allowed"),
    ("range(2, 6, 1)", "range with other than 1 or 2"),
    ("range(n)", "range with non-int-constant"),
    ("[*'ab']", "unpacking"),
])
def test_reject_non_literal_values(value, fragment):
    msg = reject(fragment, parse_genotype, f"Genotype(normal={value}, {GOOD_REST})")
    assert "not allowed" in msg


def test_reject_positional_unknown_duplicate_missing():
    reject("keyword arguments only", parse_genotype, f"Genotype({GOOD_NORMAL}, {GOOD_REST})")
    reject("unknown field(s) 'normal_cat'", parse_genotype,
           f"Genotype(normal={GOOD_NORMAL}, normal_cat=[2], {GOOD_REST})")
    reject("keyword 'normal' given twice", parse_genotype,
           f"Genotype(normal={GOOD_NORMAL}, normal={GOOD_NORMAL}, {GOOD_REST})")
    reject("missing field(s) 'reduce_concat'", parse_genotype,
           f"Genotype(normal={GOOD_NORMAL}, {GOOD_REST.rsplit(', reduce_concat', 1)[0]})")
    reject("**-unpacking", parse_genotype, "Genotype(**{'normal': []})")


def test_reject_wrong_top_level():
    reject("where Genotype(...) was expected", parse_genotype, f"Foo(normal={GOOD_NORMAL}, {GOOD_REST})")
    reject("where Genotype(...) was expected", parse_genotype, GOOD_NORMAL)
    reject("expected Genotype(...) or NAME = Genotype(...)", parse_genotype, "import os")
    reject("expected Genotype(...) or NAME = Genotype(...)", parse_genotype,
           f"a.b = Genotype(normal={GOOD_NORMAL}, {GOOD_REST})")


def test_literal_fields_generic_recurrent():
    fields = literal_fields("RNN = Genotype(recurrent=[('tanh', 0), ('relu', 1)], concat=range(1, 9))")
    assert fields == {"recurrent": [("tanh", 0), ("relu", 1)], "concat": range(1, 9)}
    assert literal_fields("Cell(ops=('a', -2), n=range(3))", type_name="Cell") == {"ops": ("a", -2),
                                                                                      "n": range(3)}
    reject("where Cell(...) was expected", literal_fields, "Genotype(ops=[])", type_name="Cell")


# ------------------------------------------------------------------------------------------------------------
# from_dict
# ------------------------------------------------------------------------------------------------------------
def test_from_dict_errors():
    d = PUBLISHED["DARTS_V1"].to_dict()
    reject("missing field(s) 'reduce'", Genotype.from_dict, {k: v for k, v in d.items() if k != "reduce"})
    reject("unknown field(s) 'extra'", Genotype.from_dict, {**d, "extra": 1})
    reject("expected a JSON object", Genotype.from_dict, [1, 2])
    bad = json.loads(json.dumps(d))
    bad["normal"][6] = ["sep_conv_3x3", 9]
    reject("normal[6] = ('sep_conv_3x3', 9): node 3 can take inputs 0..4 only", Genotype.from_dict, bad)


# ------------------------------------------------------------------------------------------------------------
# names, loading, saving
# ------------------------------------------------------------------------------------------------------------
def test_get_genotype_names():
    assert get_genotype("darts-v2") is PUBLISHED["DARTS_V2"]
    assert get_genotype("Pc-Darts") is PUBLISHED["PC_DARTS"]
    assert get_genotype("amoebanet") is PUBLISHED["AmoebaNet"]
    assert get_genotype("DARTS") is PUBLISHED["DARTS_V2"]
    msg = reject("unknown genotype 'ENAS'", get_genotype, "ENAS")
    for name in PUBLISHED:
        assert name in msg


def test_load_genotype_all_forms(tmp_path):
    g = PUBLISHED["NASNet"]
    assert load_genotype("nasnet") == g
    assert load_genotype(" PDARTS ") == PUBLISHED["PDARTS"]

    jf = tmp_path / "cell.json"
    jf.write_text(json.dumps(g.to_dict()))
    assert load_genotype(str(jf)) == g

    tf = tmp_path / "cell.txt"
    tf.write_text(PUBLISHED_TEXT["AmoebaNet"] + "\n")
    assert load_genotype(str(tf)) == PUBLISHED["AmoebaNet"]

    run = tmp_path / "run"
    save_genotype(PUBLISHED["PC_DARTS"], run)
    assert load_genotype(str(run)) == PUBLISHED["PC_DARTS"]
    (run / "genotype.json").unlink()  # falls back to genotype.txt
    assert load_genotype(str(run)) == PUBLISHED["PC_DARTS"]
    (run / "genotype.txt").unlink()
    reject("neither genotype.json nor genotype.txt", load_genotype, str(run))

    assert load_genotype(PUBLISHED_TEXT["DARTS_V1"]) == PUBLISHED["DARTS_V1"]
    assert load_genotype(g.to_text()) == g


def test_load_genotype_errors(tmp_path):
    msg = reject("cannot load genotype 'nonsense'", load_genotype, "nonsense")
    assert "DARTS_V2" in msg
    reject("genotype file not found", load_genotype, str(tmp_path / "missing.json"))
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    reject("not valid JSON", load_genotype, str(bad_json))
    bad_txt = tmp_path / "bad.txt"
    bad_txt.write_text("Genotype(normal=[('sep_conv_9x9', 0)")
    msg = reject("malformed genotype text", load_genotype, str(bad_txt))
    assert str(bad_txt) in msg
    reject("empty genotype spec", load_genotype, "   ")


def test_save_genotype_writes_both_files(tmp_path):
    g = PUBLISHED["AmoebaNet"]
    out = tmp_path / "a" / "b"
    save_genotype(g, out)
    assert sorted(p.name for p in out.iterdir()) == ["genotype.json", "genotype.txt"]  # no temp files left
    assert Genotype.from_dict(json.loads((out / "genotype.json").read_text())) == g
    assert (out / "genotype.txt").read_text() == g.to_text() + "\n"
    assert parse_genotype((out / "genotype.txt").read_text()) == g
    save_genotype(PUBLISHED["DARTS_V1"], out)  # overwrite in place
    assert load_genotype(str(out)) == PUBLISHED["DARTS_V1"]
    reject("expected a Genotype", save_genotype, "DARTS_V2", out)


def test_save_json_is_plain_json(tmp_path):
    save_genotype(PUBLISHED["DARTS_V2"], tmp_path)
    data = json.loads((tmp_path / "genotype.json").read_text())
    assert data == PUBLISHED["DARTS_V2"].to_dict()
