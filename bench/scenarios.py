"""What each benchmark sends: request factories, one per measured operation.

A scenario hands each load-generator worker its next request and hears about
each success. Writes are arranged so that the data set stays the size it was
loaded at: users created by POST are the ones DELETE removes, and a member
added to a group is removed by the same worker's next request.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote, urlencode

from bench.dataset import user_body
from bench.labels import CREATE, DELETE, PATCH_TITLE
from scim_server.scim.schema import PATCH_OP

SCIM = "/scim/v2"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes | None = None
    label: str = ""
    expect: int = 200
    content_type: str = "application/scim+json"


class Scenario(Protocol):
    def next(self, worker: int) -> Request | None:
        """The worker's next request, or None when there is nothing left to send."""

    def done(self, worker: int, req: Request, body: bytes) -> None:
        """``req`` got the expected status."""

    def cleanup(self) -> list[Request]:
        """Requests (not measured) that undo what an interrupted run left half done."""


def _json(doc: object) -> bytes:
    return json.dumps(doc).encode()


def filter_path(expression: str, **params: str) -> str:
    return f"{SCIM}/Users?filter={quote(expression)}" + ("&" + urlencode(params) if params else "")


class Reads:
    """GETs of paths drawn at random (fixed seed) from a generator."""

    def __init__(self, label: str, make_path: Callable[[random.Random], str], seed: int = 1):
        self.label = label
        self.make_path = make_path
        self.rng = random.Random(seed)

    def next(self, worker: int) -> Request | None:
        return Request("GET", self.make_path(self.rng), label=self.label)

    def done(self, worker: int, req: Request, body: bytes) -> None:
        pass

    def cleanup(self) -> list[Request]:
        return []


class Creates:
    """POST /Users with fresh, realistic users; remembers their ids for ``Deletes``."""

    def __init__(self, tag: str, seed: int = 2, base: str = SCIM, ascii_only: bool = False) -> None:
        self.tag = tag
        self.ascii_only = ascii_only
        self.base = base
        self.rng = random.Random(seed)
        self.count = 0
        self.created: list[str] = []

    def next(self, worker: int) -> Request | None:
        self.count += 1
        body = user_body(self.rng, self.count, f"{self.tag}.example.org", self.ascii_only)
        return Request("POST", f"{self.base}/Users", _json(body), CREATE, 201)

    def done(self, worker: int, req: Request, body: bytes) -> None:
        self.created.append(json.loads(body)["id"])

    def cleanup(self) -> list[Request]:
        return []


class Deletes:
    """DELETE /Users/{id} of the given users, each once; stops when they run out."""

    def __init__(self, user_ids: list[str], base: str = SCIM) -> None:
        self.pending = list(user_ids)
        self.base = base

    def next(self, worker: int) -> Request | None:
        if not self.pending:
            return None
        uid = self.pending.pop()
        return Request("DELETE", f"{self.base}/Users/{uid}", label=DELETE, expect=204)

    def done(self, worker: int, req: Request, body: bytes) -> None:
        pass

    def cleanup(self) -> list[Request]:
        return []


class PatchTitle:
    """PATCH replace of ``title`` on random users, with a new value each time (a real write)."""

    def __init__(self, user_ids: list[str], seed: int = 3) -> None:
        self.user_ids = user_ids
        self.rng = random.Random(seed)
        self.count = 0

    def next(self, worker: int) -> Request | None:
        self.count += 1
        uid = self.rng.choice(self.user_ids)
        body = {
            "schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "path": "title", "value": f"Title {self.count}"}],
        }
        return Request("PATCH", f"{SCIM}/Users/{uid}", _json(body), PATCH_TITLE)

    def done(self, worker: int, req: Request, body: bytes) -> None:
        pass

    def cleanup(self) -> list[Request]:
        return []


class PatchActive:
    """PATCH replace of ``active`` on random users, each time the opposite of its last value."""

    def __init__(
        self, user_ids: list[str], label: str, seed: int = 4, base: str = SCIM, expect: int = 200
    ) -> None:
        self.user_ids = user_ids
        self.label = label
        self.rng = random.Random(seed)
        self.active: dict[str, bool] = {}
        self.base = base
        self.expect = expect

    def next(self, worker: int) -> Request | None:
        uid = self.rng.choice(self.user_ids)
        value = not self.active.get(uid, True)
        self.active[uid] = value
        body = {
            "schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "path": "active", "value": value}],
        }
        return Request("PATCH", f"{self.base}/Users/{uid}", _json(body), self.label, self.expect)

    def done(self, worker: int, req: Request, body: bytes) -> None:
        pass

    def cleanup(self) -> list[Request]:
        return []


class MemberChurn:
    """Each worker adds one user to the group, then removes it, then the next user.

    The group stays within ``concurrency`` members of its loaded size. Adds
    use Entra ID's form (``add`` of ``members``), removes Entra ID's and
    Okta's value-path form (``remove`` of ``members[value eq "..."]``), or with
    ``remove_by_value`` the form that names the member in ``value`` (for a peer
    that answers 501 to the value path). ``expect`` is the status of a change.
    """

    def __init__(
        self,
        group_id: str,
        free_user_ids: list[str],
        concurrency: int,
        labels: tuple[str, str],
        *,
        base: str = SCIM,
        expect: int = 204,
        remove_by_value: bool = False,
    ) -> None:
        if len(free_user_ids) < concurrency:
            raise ValueError("need at least one free user per worker")
        self.path = f"{base}/Groups/{group_id}"
        self.expect = expect
        self.remove_by_value = remove_by_value
        self.pools = [free_user_ids[i::concurrency] for i in range(concurrency)]
        self.turn = [0] * concurrency
        self.added: list[str | None] = [None] * concurrency
        self.add_label, self.remove_label = labels

    def _remove(self, uid: str) -> Request:
        op: dict[str, object] = {"op": "remove", "path": f'members[value eq "{uid}"]'}
        if self.remove_by_value:
            op = {"op": "remove", "path": "members", "value": [{"value": uid}]}
        body = _json({"schemas": [PATCH_OP], "Operations": [op]})
        return Request("PATCH", self.path, body, self.remove_label, self.expect)

    def next(self, worker: int) -> Request | None:
        added = self.added[worker]
        if added is not None:
            self.added[worker] = None
            return self._remove(added)
        pool = self.pools[worker]
        uid = pool[self.turn[worker] % len(pool)]
        self.turn[worker] += 1
        self.added[worker] = uid
        op = {"op": "add", "path": "members", "value": [{"value": uid}]}
        body = _json({"schemas": [PATCH_OP], "Operations": [op]})
        return Request("PATCH", self.path, body, self.add_label, self.expect)

    def done(self, worker: int, req: Request, body: bytes) -> None:
        pass

    def cleanup(self) -> list[Request]:
        leftovers = [uid for uid in self.added if uid is not None]
        self.added = [None] * len(self.added)
        return [self._remove(uid) for uid in leftovers]
