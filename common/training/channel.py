"""What every training protocol keeps at a station between rounds: the coordinator's seed, the
station's X25519 key and its peers' public keys, its role and the encoding of its columns.

Shared by logistic regression (:mod:`.protocol`) and Cox regression (:mod:`.cox`), whose first
round (``train_setup``) is the same: check and describe the columns, make a channel key.
"""

from __future__ import annotations

from ..runtime.station import StationContext
from . import shares as sh
from .design import TrainSpec, build_block, parse_train_spec

STATE = "train"


def spec_of(payload: dict) -> TrainSpec:
    return parse_train_spec(payload["spec"], payload["stations"])


def step_setup(ctx: StationContext, payload: dict) -> dict:
    """Check and describe this station's columns; keep the coordinator's seed; make a channel key."""
    block = build_block(spec_of(payload), ctx.station, ctx.data)
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
