"""Exploration: the coordinator's plan of encrypted products, made after round 1's descriptions.

Which station encrypts which columns in which slot widths and ciphertext groups (cost-based), which
L columns multiply which groups, how many fresh encryptions of 0 each key owner makes, and the
three-station chains. The cost model behind the grouping: docs/leakage/exploration-cost.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..runtime.errors import InputError
from . import masked, product, shared
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
    cross = [p for p in cross if cross_needs[p]]  # the products left for Paillier
    for s, st in shared_stations.items():  # their totals come with the shares
        totals_wanted[s] = [c for c in totals_wanted[s] if c not in set(st.columns)]
    masked_for = {s: _masked_totals(s, partner[s], totals_wanted[s], meta[s], n_rows[s]) for s in meta}
    capacity = key_bits - 1
    l_totals_pair = {}
    for left, right in cross:
        l_totals_pair.setdefault(left, (left, right))
    encrypt: dict[str, dict] = {}
    zero_count: dict[str, int] = {}
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
        group_of = {c: g for g, members in enumerate(groups) for c in [cols[i] for i in members]}
        encrypt[right] = {"columns": cols, "widths": [[widths[i] for i in g] for g in groups]}
        for left, r in mine:
            takes_r_totals = right in r_totals and left == lefts[0]
            l_cols, needs = [], []
            for lc in meta[left]["names"]:
                gs = {group_of[rc] for rc in l_need[left].get(lc, ())}
                if takes_r_totals and lc == CONST:
                    gs = set(range(len(groups)))
                if gs:
                    l_cols.append(lc)
                    needs.append(sorted(gs))
            jobs.append(Job(id=f"cross:{left}:{right}", kind="cross", left=left, right=right, n_left=n_rows[left],
                             l_columns=l_cols, l_bits=[col_bits(meta[left], c) for c in l_cols], needs=needs,
                             r_columns=cols, r_bits=[col_bits(meta[right], c) for c in cols], widths=widths,
                             groups=groups, l_totals=l_totals_pair.get(left) == (left, r), r_totals=takes_r_totals))
            zero_count[right] = zero_count.get(right, 0) + n_rows[left] * len(groups)
    masked_totals: dict[str, MaskedTotals] = {}
    for s in meta:  # totals that no cross job gives: masked sums, or the columns times membership
        if s in l_totals_pair or s in r_totals or totals_wanted[s] == [CONST]:
            continue  # (a station's constant alone is the cohort size, which C knows from the link)
        if masked_for[s] is not None:
            masked_totals[s] = masked_for[s]
            continue
        p = partner[s]
        width = product.width_for(product.bound_bits(n_rows[s], meta[s]["max_bits"], 1))
        names = totals_wanted[s]
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
