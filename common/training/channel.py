"""What every training protocol keeps at a station between rounds: the coordinator's seed, the
station's X25519 key and its peers' public keys, its role and the encoding of its columns.

Shared by logistic regression (:mod:`.protocol`) and Cox regression (:mod:`.cox`), whose first
round (``train_setup``) is the same: check and describe the columns, make a channel key.
"""

from __future__ import annotations

import numpy as np

from ..runtime.errors import InputError
from ..runtime.station import StationContext
from . import shares as sh
from .design import build_block
from .labels import Pair, Seeded, at
from .spec import TrainSpec, parse_train_spec

STATE = "train"


def spec_of(payload: dict) -> TrainSpec:
    return parse_train_spec(payload["spec"], payload["stations"])


def step_setup(ctx: StationContext, payload: dict) -> dict:
    """Check and describe this station's columns; keep the coordinator's seed; make a channel key."""
    block = build_block(spec_of(payload), ctx.station, ctx.data, ctx.policy)
    private, public = sh.new_exchange_key()
    ctx.state.put(STATE, {"seed": payload["seed"], "private": private, "scaling": block.features,
                          "role": payload["role"]})
    return {"meta": block.meta(), "public_key": public}


def peer_key(ctx: StationContext, peer: str, peer_public: str) -> bytes:
    """The AEAD/PRG key this station shares with ``peer`` (the coordinator relayed only public keys)."""
    st = ctx.state.get(STATE)
    return sh.shared_key(st["private"], peer_public, (ctx.station, peer))


def stream_seeds(ctx: StationContext) -> tuple[bytes, bytes, dict]:
    """(seed shared with the coordinator, key shared with the partner station, the job state)."""
    st = ctx.state.get(STATE)
    pair = peer_key(ctx, st["partner"], st["peers"][st["partner"]])
    return bytes.fromhex(st["seed"]), pair, st


def seal_rows(ctx: StationContext, payload: dict, values: np.ndarray, extra: dict | None = None) -> dict:
    """This station's rows masked by PRG(seed shared with the coordinator), sealed for its receiver."""
    seed = bytes.fromhex(ctx.state.get(STATE)["seed"])
    masked = sh.to_ring(values) + sh.prg(seed, Seeded.ROWS, values.shape)
    receiver = payload["receiver"]
    key = peer_key(ctx, receiver, payload["peers"][receiver])
    return {"sealed": sh.seal(key, {"rows": masked, **(extra or {})}, f"rows:{ctx.station}")}


def receive_parts(ctx: StationContext, payload: dict, all_rows_without_idx: bool = False
                  ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """The peers' relayed rows turned into f = X - b (rows picked by the relayed positions, the
    coordinator's correction subtracted); each part is kept for the job. Also returns what each
    sealed blob held. ``all_rows_without_idx``: a part without positions uses every row in order."""
    st = ctx.state.get(STATE)
    parts, unsealed = {}, {}
    for station, part in payload["parts"].items():
        key = peer_key(ctx, station, st["peers"][station])
        got = sh.unseal(key, part["sealed"], f"rows:{station}")
        rows = got["rows"].astype(np.uint64)
        if all_rows_without_idx and "idx" not in part:
            idx = np.arange(len(rows))
        else:
            idx = np.asarray(part["idx"], dtype=np.int64)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(rows)):
            raise InputError("the relayed row positions do not fit the relayed rows", station=ctx.station)
        parts[station] = rows[idx] - sh.unpack(part["corr"])
        ctx.state.put_array(f"train_f_{station}", parts[station])
        unsealed[station] = got
    return parts, unsealed


def forward_parts(ctx: StationContext, payload: dict, parts: dict[str, np.ndarray]) -> dict:
    """The f parts this station computed, sealed for its partner (which then holds all of f too)."""
    st = ctx.state.get(STATE)
    partner = payload["partner"]
    key = peer_key(ctx, partner, st["peers"][partner])
    return {"sealed": sh.seal(key, parts, f"f:{ctx.station}")}


def complete_view(ctx: StationContext, payload: dict) -> None:
    """First iteration: join the partner's relayed part of f with this station's, keep it for the job (once)."""
    if "relay" not in payload or ctx.state.has("train_f"):
        return
    st = ctx.state.get(STATE)
    st["partner"] = payload["partner"]
    ctx.state.put(STATE, st)
    key = peer_key(ctx, payload["partner"], st["peers"][payload["partner"]])
    got = sh.unseal(key, payload["relay"], f"f:{payload['partner']}")
    pieces = []
    for station, width in payload["layout"]["widths"]:
        piece = got.get(station)
        if piece is None:
            piece = ctx.state.get_array(f"train_f_{station}")
        if piece.shape[1] != width:
            raise InputError("the relayed shares do not match the layout", station=ctx.station)
        pieces.append(piece.astype(np.uint64))
    products = len(payload["layout"].get("products") or [])
    if products:   # interaction columns and their dropped bits: filled in by the first aggregate round
        pieces.append(np.zeros((len(pieces[0]), 2 * products), dtype=np.uint64))   # (products.finish_round)
    ctx.state.put_array("train_f", np.hstack(pieces))


def open_shares(ctx: StationContext, payload: dict, copies: int = 1) -> dict:
    """This station's shares of the design M = f + b, of z = X beta and of the mask b + d_t.

    The hub's share of M is f + PRG(seed, b), the partner's PRG(seed, b): the coordinator knows b,
    neither station does. d_t (from the pair key) makes the opened mask b' = pi_t(b + d_t) fresh
    (also across ``copies`` of the rows: Cox with strata away from the hub).
    """
    complete_view(ctx, payload)
    own, pair, st = stream_seeds(ctx)
    hub = st["role"] == "hub"
    f = ctx.state.get_array("train_f").astype(np.uint64)
    share = sh.prg(own, Seeded.DESIGN_MASK, f.shape)
    if hub:
        share = share + f
    f, share = np.tile(f, (copies, 1)), np.tile(share, (copies, 1))
    n = f.shape[0]
    feat, t = payload["layout"]["features"], payload["t"]
    beta = sh.to_ring(np.asarray([int(b) for b in payload["beta"]], dtype=np.int64))
    b_part = share[:, feat] - (f[:, feat] if hub else np.uint64(0))  # this station's share of b
    if hub:
        b_part = b_part + sh.prg(pair, at(Pair.REFRESH, t), (n, len(feat)))
    return {"own": own, "pair": pair, "hub": hub, "n": n, "share": share, "z": share[:, feat] @ beta,
            "b_part": b_part}
