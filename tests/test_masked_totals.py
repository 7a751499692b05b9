"""Masked totals: a station's own cohort sums without Paillier, exact, and guarded at the partner.

The packing is checked against Python's own integer sums; the protocol against pandas on the records
the linkage linked; the partner's refusals on direct step calls.
"""

from __future__ import annotations

import json
import secrets

import numpy as np
import pandas as pd
import pytest
from helpers import check_moments, local_study, make_study, station_paths

from lancelot.crypto.pairkey import new_exchange_key
from lancelot.explore import masked
from lancelot.explore.steps import STATE_EXCHANGE, step_mask_sums, step_share_products
from lancelot.policy import NodePolicy
from lancelot.runtime.errors import InputError, PrivacyError
from lancelot.runtime.state import JobState
from lancelot.runtime.station import StationContext
from lancelot.training.shares import unpack

REG, GP = "registry", "gp_1"
EXACT = {s: {"LANCELOT_ROUNDING_BASE": "1"} for s in (REG, GP)}


@pytest.mark.parametrize("n_rows", [1, 37, 5000, 120_000])
def test_packed_masked_sums_equal_python_sums(n_rows):
    rng = np.random.default_rng(n_rows)
    bits = [1, 1, 9, 40, 63, 100, 1, 150]
    columns = []
    for b in bits:
        if b <= 40:
            columns.append(rng.integers(0, 2 ** b, n_rows).astype(np.int64))
        else:
            columns.append(np.array([secrets.randbits(b) for _ in range(n_rows)], dtype=object))
    columns[-2] = np.ones(n_rows, dtype=np.int8)  # a constant at its largest value
    columns[4] = rng.integers(0, 2 ** 62, n_rows, dtype=np.int64)  # numpy integers too wide for one slot: limbs
    bits[4] = 62
    rows = rng.choice(n_rows, size=max(1, n_rows * 2 // 3), replace=False)
    key = secrets.token_bytes(32)
    lay = masked.layout(bits, n_rows)
    text = masked.masked_words(columns, bits, key, "GP")
    got = masked.totals(masked.cohort_sum(text, rows), masked.mask_sum(key, "GP", n_rows, lay.words, rows), lay)
    assert got == [sum(int(c[r]) for r in rows) for c in columns]
    assert (masked.unpack_rows(masked.pack_rows(rows)) == rows).all()


def test_masked_words_look_uniform_and_differ_under_another_key():
    zeros = [np.zeros(2000, dtype=np.int8)] * 4
    a = unpack(masked.masked_words(zeros, [1] * 4, secrets.token_bytes(32), "GP"))
    b = unpack(masked.masked_words(zeros, [1] * 4, secrets.token_bytes(32), "GP"))
    assert (a != b).mean() > 0.99  # the same records, other masks
    key = secrets.token_bytes(32)  # two stations that are each other's partner mask under one pair key
    hub, gp = (unpack(masked.masked_words(zeros, [1] * 4, key, s)) for s in ("registry", "GP"))
    assert (hub != gp).mean() > 0.99  # ... with different pads (C would otherwise subtract the uploads)
    bits_set = np.unpackbits(a.astype(np.uint64).view(np.uint8)).mean()
    assert 0.48 < bits_set < 0.52  # all-zero records come out as uniform bits


def test_a_value_above_its_described_bits_is_refused():
    with pytest.raises(ValueError, match="does not fit"):
        masked.masked_words([np.array([0, 4], dtype=np.int64)], [2], secrets.token_bytes(32), "GP")


def station(tmp_path, name: str, n_rows: int = 50, k: int = 10) -> StationContext:
    ctx = StationContext(name, pd.DataFrame({"x": range(n_rows)}), JobState(tmp_path / name),
                         NodePolicy(min_cell_count=k))
    ctx.state.put(STATE_EXCHANGE, new_exchange_key()[0])
    return ctx


def sums_call(rows, station_name=GP) -> dict:
    return {"stations": [REG, GP], "station": station_name, "peer_key": new_exchange_key()[1], "n_rows": 50,
            "words": 1, "rows": masked.pack_rows(np.asarray(rows))}


def shares_call(rows, station_name=GP) -> dict:
    """The same positions as the partner of a station's shared products receives them."""
    return {"stations": [REG, GP], "keys": {station_name: new_exchange_key()[1]},
            "positions": {station_name: {"rows": masked.pack_rows(np.asarray(rows)), "n_rows": 50, "bits": [1],
                                         "limb_bits": 20, "row_bits": 6, "totals": [0]}}}


@pytest.mark.parametrize("step, call", [(step_mask_sums, sums_call), (step_share_products, shares_call)],
                         ids=["masked totals", "shared products"])
def test_a_partner_uses_cohort_positions_only_when_enough_distinct_and_once(tmp_path, step, call):
    p = station(tmp_path, REG, k=12)
    for rows in [range(11), [1] * 20, [*range(19), 50]]:  # too few, repeated, out of range
        with pytest.raises(PrivacyError, match="distinct, in range and at least 12"):
            step(p, call(list(rows)))
    out = step(p, call(range(12)))
    assert "mask_sums" in out or "share_totals" in out
    with pytest.raises(PrivacyError, match="already used"):
        step(p, call(range(20, 40)))  # a second sum would unmask the difference
    with pytest.raises(PrivacyError, match="already used"):  # ... also through the other step
        (step_share_products if step is step_mask_sums else step_mask_sums)(
            p, (shares_call if step is step_mask_sums else sums_call)(range(20, 40)))


def test_the_masked_sums_partner_checks_the_station_and_the_layout(tmp_path):
    p = station(tmp_path, REG, k=12)
    assert masked.unpack_sums(step_mask_sums(p, sums_call(range(12)))["mask_sums"], 1).shape == (1,)
    with pytest.raises(InputError, match="unexpected station"):
        step_mask_sums(p, sums_call(range(12), station_name=REG))  # itself
    with pytest.raises(InputError, match="unexpected mask layout"):
        step_mask_sums(p, {**sums_call(range(12), station_name=GP), "words": masked.MAX_WORDS + 1})


def test_masking_needs_the_round_one_key_exchange(tmp_path):
    ctx = StationContext(GP, pd.DataFrame({"x": range(5)}), JobState(tmp_path / "gp"), NodePolicy())
    with pytest.raises(PrivacyError, match="no key exchange"):
        step_mask_sums(ctx, sums_call(range(12), station_name=REG))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("masked"), patients=400, gp_stations=1, seed=11)


def test_one_station_analyses_at_two_stations_need_no_paillier_and_match_pandas(study):
    """Counts, a summary, a histogram and missingness, each of one station's columns: three rounds."""
    def v(s, c):
        return {"station": s, "column": c}
    spec = {"linkage": json.loads(study["link_spec"].read_text()), "analyses": [
        {"type": "count", "variable": v(REG, "stage")},
        {"type": "summary", "variable": v(GP, "bmi")},
        {"type": "histogram", "variable": v(REG, "age_at_diagnosis"), "edges": [40, 50, 60, 70, 80, 90]},
        {"type": "missingness", "variables": [v(REG, "who_ps"), v(GP, "bmi"), v(GP, "smoking")]}]}
    out = local_study(station_paths(study), station_env=EXACT).explore(spec, evaluate=True).to_json()
    assert out["cost"]["rounds"] == 3  # linkage's two, then the partners' mask sums: nothing to decrypt
    reg, gp = pd.read_csv(study[REG]), pd.read_csv(study[GP])
    links = pd.DataFrame(out["links"])[[REG, GP]]
    linked = links.merge(reg, left_on=REG, right_on="record_id").merge(gp, left_on=GP, right_on="patient_nr")
    assert out["cohort"]["records"] == len(linked)
    counts = linked["stage"].map(str).value_counts()
    released = {r["stage"]: r["count"] for r in out["analyses"][0]["table"] if r["count"] is not None}
    assert released and all(counts[label] == c for label, c in released.items() if label != "<other>")
    summary = out["analyses"][1]["overall"]
    assert summary["n"] == int(linked["bmi"].notna().sum())
    check_moments(summary, linked["bmi"], 1)
    missing = {r["variable"]: r["missing"] for r in out["analyses"][3]["table"]}
    for column in ("who_ps", "bmi", "smoking"):
        want = int(linked[column].isna().sum())
        assert missing[column] == want or (missing[column] is None and want < 10 * 3), column
