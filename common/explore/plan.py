"""Exploration: the coordinator's plan of encrypted products, made after round 1's descriptions.

Which station encrypts which columns in which slot widths and ciphertext groups (cost-based), which
L columns multiply which groups, how many fresh encryptions of 0 each key owner makes, and the
three-station chains. The cost model behind the grouping: docs/leakage/exploration-cost.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..runtime.errors import InputError
from . import ec_product, masked, product, shared
from .columns import CONST
from .spec import ExploreSpec, Var
from .stats import needed_sums


@dataclass
class Right:
    """What one key-owning station encrypts per row: its columns in slot order, grouped into ciphertexts."""

    columns: list[str]
    widths: list[int]              # slot width per column
    groups: list[list[int]]        # column indices per ciphertext group

    @property
    def bits(self) -> list[int]:
        return [sum(self.widths[c] for c in g) for g in self.groups]


@dataclass
class Job:
    id: str
    kind: str                      # "cross": L columns x R's encrypted rows; "totals": L columns x membership
    #                                (Paillier totals only for wide column sets; others are Plan.masked)
    left: str
    right: str                     # the key owner
    n_left: int
    l_columns: list[str]
    l_bits: list[int]              # per L column, the bits of its largest possible value
    needs: list[list[int]]         # per L column, the R groups it is multiplied with
    r_columns: list[str]           # R's encrypted columns (totals: the constant)
    r_bits: list[int]
    widths: list[int]              # slot width per R column
    groups: list[list[int]]        # R column indices per group
    l_totals: bool = False         # this job's (L column x R's constant) slots are L's totals
    r_totals: bool = False         # this job's (L's constant x R column) slots are R's totals
    cipher: str = "paillier"       # "ec": counts of 0/1 columns on exponential ElGamal (.ec_product), one
    #                                group per R column

    @property
    def bits(self) -> list[int]:
        return [sum(self.widths[c] for c in g) for g in self.groups]


@dataclass
class Chain:
    """A crosstab with one variable at each of three stations: a -> shift, b -> key owner, c -> aggregate."""

    id: str
    index: int
    a: Var
    b: Var
    c: Var
    a_columns: list[str]
    b_columns: list[str]
    c_columns: list[str]
    slot_bits: int
    capacity: int
    bound: int


@dataclass
class MaskedTotals:
    """A station's own totals by masked sums (:mod:`.masked`): its columns, their bits, its partner."""

    station: str
    partner: str
    columns: list[str]
    bits: list[int]
    layout: masked.Layout


@dataclass
class SharedStation:
    """A station's columns on additive shares (:mod:`.shared`): uploaded in limbs, masked for its partner."""

    station: str
    partner: str
    columns: list[str]
    bits: list[int]
    layout: shared.Layout
    totals: list[int]              # the columns whose cohort totals the analyses read
    row_bits: int                  # bit length of the largest station's row count (bounds every sum)

    @property
    def release(self) -> shared.Release:
        return shared.release_totals(self.layout, self.bits, self.totals, self.row_bits)


@dataclass
class SharedPair:
    """The cohort products of station ``a``'s shared columns with station ``b``'s that the analyses read
    (``products``: index pairs into the two stations' shared columns).

    ``dealer_a`` deals the triple of C's product with a's partner, ``dealer_b`` with b's partner.
    """

    id: str
    a: str
    b: str
    dealer_a: str
    dealer_b: str
    products: list[tuple[int, int]]


@dataclass
class Plan:
    jobs: list[Job]
    encrypt: dict[str, dict]       # key owner -> explore_encrypt payload (columns, widths, zeros, chains)
    chains: list[Chain]
    masked: dict[str, MaskedTotals]
    shared: dict[str, SharedStation]
    shared_pairs: list[SharedPair]


def _masked_totals(station: str, partner: str, names: list[str], meta: dict, n_rows: int) -> MaskedTotals | None:
    """Masked totals for a station's columns (its constant is the cohort size C knows), unless too wide."""
    names = [c for c in names if c != CONST]
    bits = [col_bits(meta, c) for c in names]
    lay = masked.layout(bits, n_rows)
    return MaskedTotals(station, partner, names, bits, lay) if names and lay.words <= masked.MAX_WORDS else None


def _family(column: str) -> str:
    """The variable a column belongs to (``c|stage``, ``h|bmi``, ``km3|km``): its first two name parts."""
    return "|".join(column.split("|")[:2])


def _plan_shared(cross: list[tuple[str, str]], cross_needs: dict, totals_wanted: dict[str, list[str]], meta: dict,
                 n_rows: dict, partner: dict[str, str]) -> tuple[dict[str, SharedStation], list[SharedPair], dict]:
    """Which products go on shares (:mod:`.shared`): per station, whole column families, narrowest first,
    while a record's limbs fit the words :func:`.shared.max_words_for` allows at this size; a product goes on
    shares when both its columns do. Wider families (for example Kaplan-Meier exits, one column per time)
    stay with Paillier. A shared station's other totals come from masked sums over the same positions.

    Returns the shared stations, the shared pairs and, per pair, the products left for Paillier.
    """
    limb_bits = shared.limb_bits_for(max(n_rows.values()))
    max_words = shared.max_words_for(max(n_rows.values()))
    order = list(meta)
    candidates: dict[str, set[str]] = {}
    for left, right in cross:
        for lc, rc in cross_needs[(left, right)]:
            candidates.setdefault(left, set()).add(lc)
            candidates.setdefault(right, set()).add(rc)
    included: dict[str, set[str]] = {}
    for s, cols in candidates.items():
        cols = cols - {CONST}
        families: dict[str, list[str]] = {}
        for c in meta[s]["names"]:
            if c in cols:
                families.setdefault(_family(c), []).append(c)
        widths = {f: shared.layout([col_bits(meta[s], c) for c in m], limb_bits).words for f, m in families.items()}
        words, keep = 0, set()
        for f in sorted(families, key=lambda f: (widths[f], families[f][0])):
            if words + widths[f] <= max_words:
                words += widths[f]
                keep.update(families[f])
        included[s] = keep
    pairs, rest = {}, {}
    for left, right in cross:
        on_shares = {(lc, rc) for lc, rc in cross_needs[(left, right)]
                     if lc in included[left] and rc in included[right]}
        rest[(left, right)] = cross_needs[(left, right)] - on_shares
        if on_shares:
            pairs[(left, right)] = on_shares
    in_pairs = {s for p in pairs for s in p}
    columns = {s: [c for c in meta[s]["names"] if c in included[s]] for s in order if s in in_pairs}
    row_bits = shared.row_bits_for(max(n_rows.values()))
    stations = {}
    for s, cs in columns.items():
        bits = [col_bits(meta[s], c) for c in cs]
        stations[s] = SharedStation(s, partner[s], cs, bits, shared.layout(bits, limb_bits),
                                    [i for i, c in enumerate(cs) if c in totals_wanted[s]], row_bits)
    first_other = {q: next(s for s in order if s != q) for q in order}  # a dealer is any station but the participant
    shared_pairs = []
    for i, ((a, b), needs) in enumerate(pairs.items()):
        index_a, index_b = ({c: k for k, c in enumerate(columns[x])} for x in (a, b))
        shared_pairs.append(SharedPair(f"pair{i}", a, b, dealer_a=first_other[partner[a]],
                                       dealer_b=first_other[partner[b]],
                                       products=sorted((index_a[lc], index_b[rc]) for lc, rc in needs)))
    return stations, shared_pairs, rest


# relative costs for choosing ciphertext groups: one owner encryption per row and group (rows and padding)
# against one packed result ciphertext (Horner shifts at L, its own re-randomisation, a decryption)
_COST_ENCRYPTION = 1.0
_COST_RESULT = 40.0
# Microseconds on one core of this project's 2-core reference machine: a Paillier owner encryption (2048 bits) and
# a packed result (L's Horner shifts, the owner's decryption; profiled at 10,000 patients), an edwards25519
# fixed-base and variable-base scalar multiplication, a point addition (PyNaCl).
_US_PAILLIER_ROW, _US_PAILLIER_RESULT, _US_BASE, _US_MULT, _US_ADD = 650.0, 600.0, 35.0, 180.0, 22.0
COUNTS_CIPHER = "LANCELOT_COUNTS_CIPHER"  # coordinator environment: auto (default), paillier or ec (tests, benchmarks)


def _counted_totals(names: list[str], meta: dict, masked_for: MaskedTotals | None, n_rows: int) -> list[str]:
    """The indicator columns among a station's totals to count on ElGamal (times its membership, under its
    partner's key) rather than as masked sums: all of them when the masked words would pass the bytes the plan
    allows one relayed matrix (a 200-bin histogram at 120,000 rows: about 100 MB of words, where the partner's
    zero rows weigh 64 bytes per record), or there is no masked layout; otherwise none."""
    forced = os.environ.get(COUNTS_CIPHER, "auto")
    indicators = [c for c in names if c != CONST and c in set(meta.get("indicators", ()))]
    if forced == "paillier" or not indicators:
        return []
    wide = masked_for is None or masked_for.layout.words > shared.max_words_for(n_rows)
    return indicators if forced == "ec" or wide else []


def _orient_for_counts(cross: list[tuple[str, str]], cross_needs: dict, meta: dict) -> list[tuple[str, str]]:
    """Swap a pair's roles when only then its products can be counted on ElGamal.

    The key owner R encrypts a point per row for each of its columns, so R must be the side with few columns
    (a quantile grid of 200 bins at the GP by a registry category: the registry encrypts its category).
    ``cross_needs`` is re-keyed for every swapped pair.
    """
    if os.environ.get(COUNTS_CIPHER, "auto") == "paillier":
        return cross
    out = []
    for left, right in cross:
        needs = cross_needs[(left, right)]
        l_cols, r_cols = {lc for lc, _ in needs} | {CONST}, {rc for _, rc in needs} | {CONST}
        indicators = set(meta[left].get("indicators", ())), set(meta[right].get("indicators", ()))
        if (len(r_cols) > ec_product.MAX_COLUMNS >= len(l_cols) and l_cols <= indicators[0]
                and r_cols <= indicators[1] and (right, left) not in cross_needs):
            cross_needs[(right, left)] = {(rc, lc) for lc, rc in cross_needs.pop((left, right))}
            out.append((right, left))
        else:
            out.append((left, right))
    return out


def _counted_columns(cols: list[str], mine: list[tuple[str, str]], l_need: dict[str, dict[str, set[str]]],
                     r_totals: bool) -> list[str]:
    """R's columns that some count needs: not R's constant when only L's constant needs it (their product is the
    cohort size, which C knows from the link; on Paillier it shares a ciphertext for free, here it costs a point
    per row)."""
    used = {rc for left, _ in mine for lc, rcs in l_need[left].items() for rc in rcs if (lc, rc) != (CONST, CONST)}
    if r_totals:
        used |= set(cols) - {CONST}
    return [c for c in cols if c in used]


def _counts_pay(right: str, cols: list[str], groups: list[list[int]], mine: list[tuple[str, str]],
                l_need: dict[str, dict[str, set[str]]], r_totals_left: str | None, meta: dict, n_rows: dict) -> bool:
    """Whether R's cross jobs are cheaper as counts on exponential ElGamal than on Paillier.

    Only when every column on both sides is a 0/1 indicator (sums are counts, small enough for the
    discrete logarithm). ElGamal: k + 1 fixed-base points per row (R's rows and the padding), a row
    sum at C and at L, and per L column a re-randomisation and k partial decryptions (variable-base);
    Paillier: one owner encryption per row and group, and a share of a packed result per L column.
    ``LANCELOT_COUNTS_CIPHER`` in the coordinator's environment forces either (both are equally private).
    """
    forced = os.environ.get(COUNTS_CIPHER, "auto")
    k = len(cols)
    if forced == "paillier" or not 0 < k <= ec_product.MAX_COLUMNS \
            or not set(cols) <= set(meta[right].get("indicators", ())):
        return False
    rows = n_rows[right] + sum(n_rows[left] for left, _ in mine)
    ec_cost, paillier_cost = rows * (k + 1) * _US_BASE, rows * len(groups) * _US_PAILLIER_ROW
    for left, _ in mine:
        l_cols = {lc: rcs & set(cols) for lc, rcs in l_need[left].items() if rcs & set(cols)}
        if left == r_totals_left:
            l_cols[CONST] = set(cols)
        if not set(l_cols) <= set(meta[left].get("indicators", ())):
            return False
        linked = min(n_rows[left], n_rows[right])
        ec_cost += (n_rows[left] + linked) * (k + 1) * _US_ADD
        ec_cost += sum(_US_BASE + len(rc) * 2 * _US_MULT for rc in l_cols.values())
        paillier_cost += len(l_cols) * _US_PAILLIER_RESULT
    return forced == "ec" or ec_cost < paillier_cost


def col_bits(meta: dict, col: str) -> int:
    if col in meta["scaled"]:
        return meta["max_bits"]
    return meta.get("plain_bits", meta["max_bits"])


def _group(columns: list[str], r_bits: list[int], l_bits: list[dict[str, int]], n_rows: dict, needers: list[int],
           rows: int, capacity: int) -> tuple[list[list[int]], list[int], float]:
    """Consecutive columns into ciphertext groups of at most ``capacity`` bits, at least cost.

    An L column that needs one column of a group is multiplied with the whole group, so each slot's
    width must hold the largest sum of its column with any L column that needs any column of its
    group: ``l_bits[c][L]`` is the bit length of the largest L column that needs column c (absent:
    none does). Cost: per group, one encryption per row (``rows``: R's rows plus the padded
    layouts), plus per L column that needs the group (``needers[c]``: a bit set of L columns), the
    group's share of a packed result ciphertext. Returns the groups, every column's slot width and
    the cost.
    """
    m = len(columns)
    best = [0.0] + [float("inf")] * m
    cut = [0] * (m + 1)
    for j in range(1, m + 1):
        lb: dict[str, int] = {}
        who = 0
        for i in range(j - 1, -1, -1):
            for left, bits in l_bits[i].items():
                lb[left] = max(lb.get(left, 0), bits)
            who |= needers[i]
            used = sum(_slot_width(lb, n_rows, r_bits[c]) for c in range(i, j))
            if used > capacity:
                break
            cost = best[i] + rows * _COST_ENCRYPTION + who.bit_count() * used / capacity * _COST_RESULT
            if cost < best[j]:
                best[j], cut[j] = cost, i
    if m and best[m] == float("inf"):
        raise InputError("values too large for one Paillier slot with this key size")
    groups, j = [], m
    while j > 0:
        groups.append(list(range(cut[j], j)))
        j = cut[j]
    groups = groups[::-1]
    widths = [0] * m
    for g in groups:
        lb = {}
        for c in g:
            for left, bits in l_bits[c].items():
                lb[left] = max(lb.get(left, 0), bits)
        for c in g:
            widths[c] = _slot_width(lb, n_rows, r_bits[c])
    return groups, widths, best[m]


def _slot_width(lb: dict[str, int], n_rows: dict, r_bits: int) -> int:
    bound = max((product.bound_bits(n_rows[left], bits, r_bits) for left, bits in lb.items()), default=r_bits)
    return product.width_for(bound)


def _needers(mine: list[tuple[str, str]], cross_needs: dict, l_totals_pair: dict, meta: dict,
             totals_wanted: dict[str, list[str]]) -> tuple:
    """For one key owner R and its cross jobs ``mine``: which L columns multiply each R column.

    Returns (bit index of each (L, L column), per R column the bit set of L columns that need it,
    per R column and L the bit length of the largest L column that needs it, per L and L column the
    R columns it needs).
    """
    who: dict[tuple[str, str], int] = {}
    needers: dict[str, int] = {}
    l_bits: dict[str, dict[str, int]] = {}
    l_need: dict[str, dict[str, set[str]]] = {left: {} for left, _ in mine}
    for left, r in mine:
        wanted = list(cross_needs[(left, r)])
        if l_totals_pair.get(left) == (left, r):  # L's totals: every L column times R's constant
            wanted += [(lc, CONST) for lc in totals_wanted[left]]
        for lc, rc in wanted:
            needers[rc] = needers.get(rc, 0) | (1 << who.setdefault((left, lc), len(who)))
            per = l_bits.setdefault(rc, {})
            per[left] = max(per.get(left, 0), col_bits(meta[left], lc))
            l_need[left].setdefault(lc, set()).add(rc)
    return who, needers, l_bits, l_need


def plan_products(spec: ExploreSpec, meta: dict, n_rows: dict, pairs: list[tuple[str, str]], partner: dict[str, str],
          k: int, key_bits: int) -> Plan:
    """Which sums to compute where.

    One cross job per station pair (L, R) whose products some analysis needs: R encrypts the
    columns needed, with its constant first, and L multiplies. The same job gives L's totals (L's
    columns times R's constant) and, when R's remaining columns fit at little cost, R's totals (L's
    constant times R's columns). A station whose totals no cross job gives gets a totals job: its
    columns times its membership: masked sums with its partner (:mod:`.masked`, no encryption) when
    its columns fit a few words per record, otherwise encrypted under its partner's key. Like the
    cross products, the totals are those the analyses read in their dry run (:func:`needed_sums`),
    plus every station's constant; a station whose only total is its constant gets no totals job
    (the coordinator knows the cohort size from the link).
    """
    recorder = needed_sums(spec, meta, k)
    cross_needs: dict[tuple[str, str], set[tuple[str, str]]] = {p: set() for p in pairs}
    for s1, c1, s2, c2 in recorder.cross_requests:
        if (s1, s2) in cross_needs:
            cross_needs[(s1, s2)].add((c1, c2))
        elif (s2, s1) in cross_needs:
            cross_needs[(s2, s1)].add((c2, c1))
        else:
            raise RuntimeError(f"no product planned for {s1} x {s2}")
    # the totals the analyses read (their dry run), and every station's constant (the cohort size)
    asked = {(s, c) for s, c in recorder.total_requests} | {(s, CONST) for s in meta}
    totals_wanted = {s: [c for c in meta[s]["names"] if (s, c) in asked] for s in meta}
    cross = [(left, right) for (left, right), needs in cross_needs.items() if needs]
    shared_stations, shared_pairs, cross_needs = _plan_shared(cross, cross_needs, totals_wanted, meta, n_rows,
                                                              partner)
    cross = _orient_for_counts([p for p in cross if cross_needs[p]], cross_needs, meta)  # left for encryption
    for s, st in shared_stations.items():  # their totals come with the shares
        totals_wanted[s] = [c for c in totals_wanted[s] if c not in set(st.columns)]
    masked_for = {s: _masked_totals(s, partner[s], totals_wanted[s], meta[s], n_rows[s]) for s in meta}
    capacity = key_bits - 1
    l_totals_pair = {}
    for left, right in cross:
        l_totals_pair.setdefault(left, (left, right))
    encrypt: dict[str, dict] = {}
    zero_count: dict[str, int] = {}
    ec_rows: dict[str, int] = {}   # zero rows each ElGamal key owner makes (the layouts it pads, membership)
    jobs: list[Job] = []
    r_totals: set[str] = set()
    for right in dict.fromkeys(r for _, r in cross):
        mine = [(left, r) for left, r in cross if r == right]
        lefts = [left for left, _ in mine]
        who, needers, l_bits, l_need = _needers(mine, cross_needs, l_totals_pair, meta, totals_wanted)
        needed = [c for c in meta[right]["names"] if c in needers and c != CONST]  # most needed first
        needed = sorted([CONST] + needed, key=lambda c: -needers.get(c, 0).bit_count())
        rest = [c for c in totals_wanted[right] if c not in needers and c != CONST]
        rows = n_rows[right] + sum(n_rows[left] for left in lefts)

        cols = needed
        r_bits = [col_bits(meta[right], c) for c in cols]
        groups, widths, cost = _group(cols, r_bits, [l_bits.get(c, {}) for c in cols], n_rows,
                                      [needers.get(c, 0) for c in cols], rows, capacity)
        if right not in l_totals_pair:  # R's totals: L's constant times every R column, or a totals job
            const_bit = 1 << who.setdefault((lefts[0], CONST), len(who))
            cols_b = cols + rest
            groups_b, widths_b, cost_b = _group(
                cols_b, [col_bits(meta[right], c) for c in cols_b],
                [{**l_bits.get(c, {}), lefts[0]: max(1, l_bits.get(c, {}).get(lefts[0], 0))} for c in cols_b],
                n_rows, [needers.get(c, 0) | const_bit for c in cols_b], rows, capacity)
            totals_job = 0.0 if masked_for[right] else \
                n_rows[right] * _COST_ENCRYPTION + len(totals_wanted[right]) * _COST_RESULT / 20
            if not rest or cost_b <= cost + totals_job:
                cols, groups, widths = cols_b, groups_b, widths_b
                r_totals.add(right)
        cipher = "paillier"
        r_totals_left = lefts[0] if right in r_totals else None
        counted = _counted_columns(cols, mine, l_need, right in r_totals)
        if _counts_pay(right, counted, groups, mine, l_need, r_totals_left, meta, n_rows):
            # on counts R's constant costs a point per row: an L's totals come from its masked sums when they fit
            masked_l = [left for left in lefts if l_totals_pair.get(left) == (left, right) and masked_for[left]
                        and masked_for[left].layout.words <= shared.max_words_for(n_rows[left])]
            if masked_l:
                for left in masked_l:
                    del l_totals_pair[left]
                l_need = _needers(mine, cross_needs, l_totals_pair, meta, totals_wanted)[3]
                fewer = _counted_columns(cols, mine, l_need, right in r_totals)
                if fewer and _counts_pay(right, fewer, groups, mine, l_need, r_totals_left, meta, n_rows):
                    counted = fewer
            cipher, cols = "ec", counted
            groups, widths = [[i] for i in range(len(cols))], [1] * len(cols)
            encrypt[right] = {"ec": {"columns": cols}}
            ec_rows[right] = ec_rows.get(right, 0) + sum(n_rows[x] for x in lefts)
        else:
            encrypt[right] = {"columns": cols, "widths": [[widths[i] for i in g] for g in groups]}
        group_of = {c: g for g, members in enumerate(groups) for c in [cols[i] for i in members]}
        for left, r in mine:
            takes_r_totals = right in r_totals and left == lefts[0]
            l_cols, needs = [], []
            for lc in meta[left]["names"]:
                gs = {group_of[rc] for rc in l_need[left].get(lc, ()) if rc in group_of}
                if takes_r_totals and lc == CONST:
                    gs = set(range(len(groups)))
                if gs:
                    l_cols.append(lc)
                    needs.append(sorted(gs))
            jobs.append(Job(id=f"cross:{left}:{right}", kind="cross", left=left, right=right, n_left=n_rows[left],
                             l_columns=l_cols, l_bits=[col_bits(meta[left], c) for c in l_cols], needs=needs,
                             r_columns=cols, r_bits=[col_bits(meta[right], c) for c in cols], widths=widths,
                             groups=groups, l_totals=l_totals_pair.get(left) == (left, r), r_totals=takes_r_totals,
                             cipher=cipher))
            if cipher == "paillier":
                zero_count[right] = zero_count.get(right, 0) + n_rows[left] * len(groups)
    masked_totals: dict[str, MaskedTotals] = {}
    for s in meta:  # totals that no cross job gives: masked sums, or the columns times membership
        if s in l_totals_pair or s in r_totals or totals_wanted[s] == [CONST]:
            continue  # (a station's constant alone is the cohort size, which C knows from the link)
        p = partner[s]
        names, masked_s = totals_wanted[s], masked_for[s]
        counted = _counted_totals(names, meta[s], masked_s, n_rows[s])
        if counted:  # its indicators times its membership on ElGamal (P's zero rows); the rest as below
            jobs.append(Job(id=f"counts:{s}", kind="totals", left=s, right=p, n_left=n_rows[s], l_columns=counted,
                             l_bits=[1] * len(counted), needs=[[0]] * len(counted), r_columns=[CONST], r_bits=[1],
                             widths=[1], groups=[[0]], l_totals=True, cipher="ec"))
            encrypt.setdefault(p, {}).setdefault("ec", {"columns": []})
            ec_rows[p] = ec_rows.get(p, 0) + n_rows[s]
            names = [c for c in names if c not in set(counted)]
            if names in ([], [CONST]):
                continue
            masked_s = _masked_totals(s, p, names, meta[s], n_rows[s])
        if masked_s is not None:
            masked_totals[s] = masked_s
            continue
        width = product.width_for(product.bound_bits(n_rows[s], meta[s]["max_bits"], 1))
        jobs.append(Job(id=f"totals:{s}", kind="totals", left=s, right=p, n_left=n_rows[s], l_columns=names,
                         l_bits=[col_bits(meta[s], c) for c in names], needs=[[0]] * len(names), r_columns=[CONST],
                         r_bits=[1], widths=[width], groups=[[0]], l_totals=True))
        encrypt.setdefault(p, {})
        zero_count[p] = zero_count.get(p, 0) + n_rows[s]
    chains = []
    for index in sorted(recorder.triple_requests):
        a_var, b_var, c_var = spec.analyses[index].variables
        cols = {v: [f"c|{v.column}|{label}" for label in meta[v.station]["categories"][v.column]]
                for v in (a_var, b_var, c_var)}
        bound = max(n_rows.values()).bit_length() + 1
        width = product.width_for(bound)
        chain_capacity = capacity // width
        if len(cols[a_var]) * len(cols[b_var]) > chain_capacity:
            raise InputError(f"analysis '{spec.analyses[index].name}': too many category combinations of the first "
                             f"two variables for a three-station crosstab (at most {chain_capacity})")
        chain = Chain(id=f"chain{index}", index=index, a=a_var, b=b_var, c=c_var, a_columns=cols[a_var],
                       b_columns=cols[b_var], c_columns=cols[c_var], slot_bits=width, capacity=chain_capacity,
                       bound=bound)
        chains.append(chain)
        encrypt.setdefault(b_var.station, {}).setdefault("chains", {})[chain.id] = {"columns": cols[b_var],
                                                                                   "slot_bits": width}
        zero_count[b_var.station] = zero_count.get(b_var.station, 0) + n_rows[a_var.station] + n_rows[c_var.station]
    for station, enc in encrypt.items():
        enc["zeros"] = product.zeros_for(zero_count.get(station, 0))
        if "ec" in enc:
            enc["ec"]["zeros"] = product.zeros_for(ec_rows.get(station, 0))
    return Plan(jobs=jobs, encrypt=encrypt, chains=chains, masked=masked_totals, shared=shared_stations,
                shared_pairs=shared_pairs)


def result_slots(job: Job, layout: list) -> list[list[tuple[int, int]]]:
    """Per result ciphertext of a job, each slot's (width, bound), from the layout L reported."""
    out = []
    for entries in layout:
        slots = []
        for a, g in entries:
            if not (isinstance(a, int) and isinstance(g, int) and 0 <= a < len(job.l_columns)
                    and g in job.needs[a]):
                raise InputError("a station's result layout does not match the job", station=job.left)
            for b in job.groups[g]:
                slots.append((job.widths[b], product.bound_bits(job.n_left, job.l_bits[a], job.r_bits[b])))
        out.append(slots)  # product.mask_results refuses a layout that does not fit below n
    return out
