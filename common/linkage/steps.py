"""Private record linkage: the station steps (``link_encode``, ``link_exponentiate``).

The round-by-round description is in :mod:`lancelot.linkage.protocol` (the coordinator's side);
who sees what in docs/leakage/linkage.md. :func:`station_rows` gives every later protocol the
station's data in the job's shuffled order, the order the link refers to.
"""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd

from ..policy import ENV_NAMES
from ..runtime.errors import InputError, PrivacyError
from ..runtime.station import StationContext
from . import pseudonym, similarity
from .keys import check_key_fields, check_recipes, key_recipes, key_strings
from .model import (
    station_state_counts,
    used_components,
)
from .normalise import check_station_data, empty_columns, normalise
from .spec import LinkageSpec, parse_linkage_spec

STATE_PERM = "link_perm"
STATE_SECRET = "link_secret"
STATE_SIMILARITY = "link_similarity"


def similarity_wanted(spec: LinkageSpec, ctx: StationContext) -> tuple[bool, str | None]:
    """Whether this station takes part in the residue's similarity step, and a warning if it cannot.

    Off when the spec says ``"similarity": false`` or the node policy says no (the researcher can
    only switch it off); skipped with a warning naming the station and its linkage columns when the
    spec has no name field (a filter of dates and postcodes alone cannot tell people apart).
    """
    if spec.similarity is False or not ctx.policy.allow_linkage_similarity:
        return False, None
    if not similarity.name_fields(spec):
        columns = [f.columns[ctx.station] for f in spec.fields]
        return False, (f"station '{ctx.station}': the similarity step for records no key links is skipped: the spec "
                       f"has no name field (kind 'string' or 'name'); this station's linkage columns are {columns}")
    return True, None


# ---------------------------------------------------------------------------------------------
# station steps
# ---------------------------------------------------------------------------------------------
def step_link_encode(ctx: StationContext, payload: dict) -> dict:
    spec = parse_linkage_spec(payload["spec"])
    evaluate = bool(payload.get("evaluate"))
    if evaluate and not ctx.allows_evaluate:
        raise PrivacyError(f"station '{ctx.station}' refuses --evaluate: its node operator has not set "
                           f"{ENV_NAMES['allow_evaluate']}=1 in the node's algorithm_env")
    recipes = key_recipes(spec)
    check_recipes(spec, recipes)
    check_key_fields(recipes, ctx.policy.min_key_fields, ctx.station)
    max_frequency = min(spec.max_key_frequency, ctx.policy.max_key_frequency)  # the researcher may only lower it
    check_station_data(spec, ctx.station, ctx.data)         # these raise InputError before any crypto work
    warnings = empty_columns(spec, ctx.station, ctx.data)
    use_similarity, warning = similarity_wanted(spec, ctx)
    if warning:
        warnings.append(warning)
    components = normalise(spec, ctx.station, ctx.data)
    n = len(components)
    perm = pseudonym.secure_permutation(n)
    secret = pseudonym.new_secret()
    ctx.state.put_array(STATE_PERM, perm)
    ctx.state.put(STATE_SECRET, {"scalar": secret.hex()})
    shuffled = components.iloc[perm].reset_index(drop=True)
    strings = key_strings(shuffled, recipes)
    frequent_per_key = []
    keys_in_order: list[str | None] = []
    for values in strings.values():
        # a key value shared by many records here says little and feeds frequency attacks: drop it
        column = pd.Series(values, dtype=object)
        counts = column.map(column.value_counts()).to_numpy()
        frequent = column.notna().to_numpy() & (np.nan_to_num(counts.astype(float)) > max_frequency)
        frequent_per_key.append(int(frequent.sum()))
        keys_in_order.extend(np.where(frequent, None, column.to_numpy()).tolist())
    blinded = pseudonym.blind_keys(secret, keys_in_order)  # hashing and curve work on every core
    size = n * pseudonym.POINT_BYTES
    points = {name: base64.b64encode(blinded[i * size:(i + 1) * size]).decode("ascii")
              for i, name in enumerate(strings)}
    # aggregates for the match model: per field, the share of pairs of this station's records in each
    # state (which components agree), and per key the number of values dropped as too frequent
    state_shares = station_state_counts(components, used_components(recipes, spec))
    result = {"n": n, "keys": list(strings), "points": points, "dropped_frequent_values": sum(frequent_per_key),
              "dropped_per_key": frequent_per_key, "state_shares": state_shares,
              "warnings": warnings, "policy": ctx.policy.public()}
    if use_similarity:
        # the public half of a fresh X25519 key: the station-pair key for the residue's Bloom filters is
        # derived in round 2 from the other station's public half, which the coordinator relays
        private, public = similarity.new_exchange_key()
        ctx.state.put(STATE_SIMILARITY, {"private": private, "spec": spec.to_dict()})
        result["similarity_key"] = public
    if evaluate:
        ids = ctx.data[spec.stations[ctx.station]].astype(str).to_numpy()[perm]
        result["record_ids"] = ids.tolist()
    return result


def step_link_exponentiate(ctx: StationContext, payload: dict) -> dict:
    secret = bytes.fromhex(ctx.state.get(STATE_SECRET)["scalar"])
    items = [(label, name, base64.b64decode(text))
             for label, keys in payload["batches"].items() for name, text in keys.items()]
    for label, name, raw in items:
        if len(raw) % pseudonym.POINT_BYTES:
            raise InputError(f"the points of key {name} from {label} are not a whole number of points")
    blinded = pseudonym.exponentiate_packed(secret, b"".join(raw for _, _, raw in items))  # one parallel batch
    # the coordinator only compares these for equality: the first 16 bytes of each point suffice
    # (a chance collision among 10^13 pairs has probability below 10^-12) and halve what is relayed
    truncated = pseudonym.truncate(blinded)
    out: dict[str, dict[str, str]] = {}
    start = 0
    for label, name, raw in items:
        size = len(raw) // pseudonym.POINT_BYTES * pseudonym.PSEUDONYM_BYTES
        out.setdefault(label, {})[name] = base64.b64encode(truncated[start:start + size]).decode("ascii")
        start += size
    result = {"batches": out}
    peers = payload.get("similarity_peers") or {}
    if peers:
        result["filters"] = _similarity_filters(ctx, peers, {label: len(base64.b64decode(next(iter(keys.values()))))
                                                             // pseudonym.POINT_BYTES
                                                             for label, keys in payload["batches"].items()})
    return result


def _similarity_filters(ctx: StationContext, peers: dict[str, str], peer_sizes: dict[str, int]) -> dict[str, str]:
    """This station's records as keyed, folded Bloom filters (shuffled order), one set per peer station."""
    stored = ctx.state.get(STATE_SIMILARITY) if ctx.state.has(STATE_SIMILARITY) else None
    if stored is None:
        raise PrivacyError(f"station '{ctx.station}' did not agree to the similarity step in round 1")
    spec = parse_linkage_spec(stored["spec"])
    unknown = [p for p in peers if p not in spec.stations or p == ctx.station]
    if unknown:
        raise InputError(f"similarity keys relayed for stations that are not this job's other stations: {unknown}")
    components = normalise(spec, ctx.station, ctx.data)
    shuffled = components.iloc[ctx.state.get_array(STATE_PERM)].reset_index(drop=True)
    out = {}
    for peer, public in peers.items():
        if len(shuffled) * peer_sizes.get(peer, 0) > similarity.MAX_ENCODED_PAIRS:
            continue   # too many pairs for the coordinator to compare: nothing is sent (it says so)
        key = similarity.pair_key(stored["private"], public, (ctx.station, peer))
        out[peer] = base64.b64encode(similarity.encode(spec, shuffled, key).tobytes()).decode("ascii")
    return out


STEPS = {"link_encode": step_link_encode, "link_exponentiate": step_link_exponentiate}


def station_rows(ctx: StationContext):
    """This station's data in the job's shuffled order (the order the link refers to)."""
    return ctx.data.iloc[ctx.state.get_array(STATE_PERM)].reset_index(drop=True)
