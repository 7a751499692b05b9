"""Private record linkage: the station steps (``link_encode``, then ``link_pseudonyms`` for keyed
pseudonyms or ``link_exponentiate`` for blinded ones).

The round-by-round description is in :mod:`lancelot.linkage.protocol` (the coordinator's side);
who sees what in docs/leakage/linkage.md. :func:`station_rows` gives every later protocol the
station's data in the job's shuffled order, the order the link refers to.
"""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd

from ..crypto.pairkey import pair_key
from ..policy import ENV_NAMES
from ..runtime.errors import InputError, PrivacyError
from ..runtime.station import StationContext
from . import pseudonym, similarity
from .keys import check_key_fields, check_recipes, key_name, key_recipes, key_strings
from .model import (
    station_state_counts,
    used_components,
)
from .normalise import duplicate_records, empty_columns, normalise
from .spec import LinkageSpec, parse_linkage_spec

STATE_PERM = "link_perm"
STATE_SECRET = "link_secret"
STATE_EXCHANGE = "link_exchange"
STATE_DIGESTS = "link_digests"


def similarity_wanted(spec: LinkageSpec, ctx: StationContext) -> tuple[bool, str | None]:
    """Whether this station takes part in the residue's similarity step, and a warning if it cannot.

    Off when the spec says ``"similarity": false`` or the node policy says no (the researcher can
    only switch it off; a node that resists collusion never sends filters); skipped with a warning
    naming the station and its linkage columns when the spec has no name field (a filter of dates and
    postcodes alone cannot tell people apart).
    """
    if (spec.similarity is False or not ctx.policy.allow_linkage_similarity
            or ctx.policy.linkage_resist_collusion):
        return False, None
    if not similarity.name_fields(spec):
        columns = [f.columns[ctx.station] for f in spec.fields]
        return False, (f"station '{ctx.station}': the similarity step for records no key links is skipped: the spec "
                       f"has no name field (kind 'string' or 'name'); this station's linkage columns are {columns}")
    return True, None


def _key_values(spec: LinkageSpec, ctx: StationContext, shuffled: pd.DataFrame) -> tuple[dict[str, list], list[int]]:
    """Every match key's value per record (shuffled order), None where missing or shared by more records than
    the frequency ceiling (such a value says little and feeds frequency attacks); and per key how many
    values were dropped as too frequent."""
    max_frequency = min(spec.max_key_frequency, ctx.policy.max_key_frequency)   # the researcher may only lower it
    values: dict[str, list] = {}
    dropped = []
    for name, column in key_strings(shuffled, key_recipes(spec)).items():
        column = np.asarray(column, dtype=object)
        codes, uniques = pd.factorize(column)          # missing values get code -1
        counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
        frequent = (codes >= 0) & (counts[np.maximum(codes, 0)] > max_frequency)
        dropped.append(int(frequent.sum()))
        values[name] = np.where(frequent, None, column).tolist()
    return values, dropped


def _shuffled_components(spec: LinkageSpec, ctx: StationContext) -> pd.DataFrame:
    components = normalise(spec, ctx.station, ctx.data)
    return components.iloc[ctx.state.get_array(STATE_PERM)].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# station steps
# ---------------------------------------------------------------------------------------------
def step_link_encode(ctx: StationContext, payload: dict) -> dict:
    spec = parse_linkage_spec(payload["spec"])
    evaluate = bool(payload.get("evaluate"))
    if evaluate and not ctx.allows_evaluate:
        raise PrivacyError(f"station '{ctx.station}' refuses --evaluate: its node operator has not set "
                           f"{ENV_NAMES['allow_evaluate']}=1 in the node's algorithm_env")
    if ctx.policy.linkage_resist_collusion and spec.pseudonyms != "blinded":
        raise PrivacyError(f"station '{ctx.station}' links only with blinded pseudonyms (its node operator set "
                           f"{ENV_NAMES['linkage_resist_collusion']}=1): set \"pseudonyms\": \"blinded\" in the "
                           "linkage spec")
    recipes = key_recipes(spec)
    check_recipes(spec, recipes)
    check_key_fields(recipes, ctx.policy.min_key_fields, ctx.station)
    components = normalise(spec, ctx.station, ctx.data)     # checks the data first (InputError naming the column)
    warnings = empty_columns(spec, ctx.station, ctx.data, components)   # these raise before any crypto work
    warnings += duplicate_records(ctx.station, components)
    use_similarity, warning = similarity_wanted(spec, ctx)
    if warning:
        warnings.append(warning)
    n = len(components)
    perm = pseudonym.secure_permutation(n)
    ctx.state.put_array(STATE_PERM, perm)
    values, dropped = _key_values(spec, ctx, components.iloc[perm].reset_index(drop=True))
    # aggregates for the match model: per field, the share of pairs of this station's records in each
    # state (which components agree), and per key the number of values dropped as too frequent
    state_shares = station_state_counts(components, used_components(recipes, spec))
    result = {"n": n, "keys": list(values), "dropped_frequent_values": sum(dropped),
              "dropped_per_key": dropped, "state_shares": state_shares,
              "warnings": warnings, "policy": ctx.policy.public()}
    if spec.pseudonyms == "blinded":
        secret = pseudonym.new_secret()
        ctx.state.put(STATE_SECRET, {"scalar": secret.hex()})
        blinded = pseudonym.blind_keys(secret, [v for column in values.values() for v in column])  # every core
        size = n * pseudonym.POINT_BYTES
        result["points"] = {name: base64.b64encode(blinded[i * size:(i + 1) * size]).decode("ascii")
                            for i, name in enumerate(values)}
    if spec.pseudonyms == "keyed":
        # the values' digests wait in the job folder for the pair keys of round 2
        digests = b"".join(pseudonym.key_digests(column) for column in values.values())
        ctx.state.put_array(STATE_DIGESTS, np.frombuffer(digests, dtype=f"S{pseudonym.PSEUDONYM_BYTES}"))
    if spec.pseudonyms == "keyed" or use_similarity:
        # the public half of a fresh X25519 key: the station-pair keys (pseudonyms, Bloom filters) are
        # derived in round 2 from the other station's public half, which the coordinator relays
        private, public = similarity.new_exchange_key()
        ctx.state.put(STATE_EXCHANGE, {"private": private, "spec": spec.to_dict(), "similarity": use_similarity})
        result["exchange_key"] = public
        result["similarity"] = use_similarity
    if evaluate:
        ids = ctx.data[spec.stations[ctx.station]].astype(str).to_numpy()[perm]
        result["record_ids"] = ids.tolist()
    return result


def step_link_pseudonyms(ctx: StationContext, payload: dict) -> dict:
    """Keyed pseudonyms of this station's match keys for each peer (one set per pair key), and the Bloom
    filters for the peers that the similarity step runs with."""
    stored, spec = _exchange_state(ctx)
    if spec.pseudonyms != "keyed":
        raise PrivacyError(f"station '{ctx.station}' agreed to blinded pseudonyms in round 1, not keyed ones")
    peers = _checked_peers(ctx, spec, payload.get("peers") or {})
    names = [key_name(r) for r in key_recipes(spec)]
    digests = ctx.state.get_array(STATE_DIGESTS).reshape(len(names), -1)
    out = {}
    for peer, public in peers.items():
        key = pair_key(stored["private"], public, (ctx.station, peer), pseudonym.KEYED_PURPOSE)
        out[peer] = {name: base64.b64encode(pseudonym.keyed_pseudonyms(key, name, row.tobytes())).decode("ascii")
                     for name, row in zip(names, digests)}
    result = {"pseudonyms": out}
    wanted = {p: peers[p] for p in payload.get("similarity") or [] if p in peers}
    if wanted:
        result["filters"] = _similarity_filters(ctx, stored, spec, _shuffled_components(spec, ctx), wanted)
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
    peers = payload.get("peers") or {}
    wanted = [p for p in payload.get("similarity") or [] if p in peers]
    if wanted:
        stored, spec = _exchange_state(ctx)
        peers = _checked_peers(ctx, spec, {p: peers[p] for p in wanted})
        result["filters"] = _similarity_filters(ctx, stored, spec, _shuffled_components(spec, ctx), peers)
    return result


def _exchange_state(ctx: StationContext) -> tuple[dict, LinkageSpec]:
    if not ctx.state.has(STATE_EXCHANGE):
        raise PrivacyError(f"station '{ctx.station}' made no exchange key in round 1 (blinded pseudonyms without "
                           "the similarity step): it derives no pair key")
    stored = ctx.state.get(STATE_EXCHANGE)
    return stored, parse_linkage_spec(stored["spec"])


def _checked_peers(ctx: StationContext, spec: LinkageSpec, peers: dict[str, str]) -> dict[str, str]:
    unknown = [p for p in peers if p not in spec.stations or p == ctx.station]
    if unknown:
        raise InputError(f"public keys relayed for stations that are not this job's other stations: {unknown}")
    return peers


def _similarity_filters(ctx: StationContext, stored: dict, spec: LinkageSpec, shuffled: pd.DataFrame,
                        peers: dict[str, str]) -> dict[str, str]:
    """This station's records as keyed, folded Bloom filters (shuffled order), one set per peer station."""
    if not stored.get("similarity"):
        raise PrivacyError(f"station '{ctx.station}' did not agree to the similarity step in round 1")
    out = {}
    for peer, public in peers.items():
        key = similarity.pair_key(stored["private"], public, (ctx.station, peer))
        out[peer] = base64.b64encode(similarity.encode(spec, shuffled, key).tobytes()).decode("ascii")
    return out


STEPS = {"link_encode": step_link_encode, "link_pseudonyms": step_link_pseudonyms,
         "link_exponentiate": step_link_exponentiate}


def station_rows(ctx: StationContext):
    """This station's data in the job's shuffled order (the order the link refers to)."""
    return ctx.data.iloc[ctx.state.get_array(STATE_PERM)].reset_index(drop=True)
