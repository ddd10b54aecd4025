"""Load the benchmark's organization into a peer through its own SCIM API (it has no other).

The users are the ones our bulk loader writes (same bodies), created by POST
from 8 clients; the big group by POST, then PATCH add of its members 500 at a
time. The peer's ids map to ours by position.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from bench.dataset import OrgData
from bench.loadgen import Target, measure
from bench.peers.servers import Dialect
from bench.scenarios import Request, _json
from scim_server.scim.schema import ENTERPRISE_SCHEMA, PATCH_OP, USER_SCHEMA

GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
LOAD_CLIENTS = 8
MEMBERS_PER_PATCH = 500


@dataclass
class PeerData:
    """What the scenarios need of one server's copy of the organization."""

    user_ids: list[str]
    user_names: list[str]
    group_id: str
    free_user_ids: list[str]
    notes: list[str] = field(default_factory=list)


class _Batch:
    """Send each request once (any worker); keep each answer's body, by position."""

    def __init__(self, requests: list[Request]) -> None:
        self.pending = list(enumerate(requests))[::-1]
        self.position: dict[int, int] = {}
        self.bodies: list[bytes | None] = [None] * len(requests)

    def next(self, worker: int) -> Request | None:
        if not self.pending:
            return None
        pos, req = self.pending.pop()
        self.position[id(req)] = pos
        return req

    def done(self, worker: int, req: Request, body: bytes) -> None:
        self.bodies[self.position[id(req)]] = body

    def cleanup(self) -> list[Request]:
        return []


def send_all(target: Target, requests: list[Request], clients: int = LOAD_CLIENTS) -> list[Any]:
    """Every request, ``clients`` at a time; the parsed answers, or a RuntimeError."""
    batch = _Batch(requests)
    outcome = measure(target, batch, clients, 0.0, 3600.0, len(requests) + 1)
    if outcome.failures or any(b is None for b in batch.bodies):
        raise RuntimeError(f"loading failed: {outcome.failures[:3]}")
    return [json.loads(b) if b else None for b in batch.bodies]


def user_bodies(org: OrgData) -> list[dict[str, Any]]:
    """The POST bodies of the organization's users (their stored documents, with schemas)."""
    return [{"schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA], **u["data"]} for u in org.tables["users"]]


def load_peer(target: Target, dialect: Dialect, org: OrgData, big_group_size: int) -> PeerData:
    base = dialect.base
    posts = [
        Request("POST", f"{base}/Users", _json(body), "load", 201) for body in user_bodies(org)
    ]
    created = send_all(target, posts)
    ids = [str(doc["id"]) for doc in created]
    group_body = {"schemas": [GROUP_SCHEMA], "displayName": f"All staff ({big_group_size})"}
    (group,) = send_all(target, [Request("POST", f"{base}/Groups", _json(group_body), "load", 201)])
    group_id = str(group["id"])
    members = ids[:big_group_size]
    for start in range(0, len(members), MEMBERS_PER_PATCH):
        chunk = members[start : start + MEMBERS_PER_PATCH]
        op = {"op": "add", "path": "members", "value": [{"value": m} for m in chunk]}
        body = _json({"schemas": [PATCH_OP], "Operations": [op]})
        req = Request("PATCH", f"{base}/Groups/{group_id}", body, "load", dialect.patch_group)
        send_all(target, [req], clients=1)
    # The same users as ours: by position in the organization.
    position = {uid: i for i, uid in enumerate(org.user_ids)}
    free = [ids[position[uid]] for uid in org.free_user_ids]
    return PeerData(ids, [d["userName"] for d in created], group_id, free)


def post_leavers(target: Target, dialect: Dialect, count: int, tag: str) -> list[str]:
    """``count`` users (not measured) for a DELETE run to remove."""
    from random import Random

    from bench.dataset import user_body

    rng = Random(tag)
    bodies = [user_body(rng, n, f"{tag}.example.org", ascii_only=True) for n in range(count)]
    posts = [Request("POST", f"{dialect.base}/Users", _json(b), "load", 201) for b in bodies]
    return [str(doc["id"]) for doc in send_all(target, posts)]
