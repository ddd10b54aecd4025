"""Check that every measured request answers what it should before timing it.

A filter that matched nothing, or a list page past the end, would be fast and
would make a meaningless figure; so would a baseline reading no row.
"""

from __future__ import annotations

import http.client
import json
import random
from typing import Any

from bench.dataset import OrgData
from bench.loadgen import Target
from bench.scenarios import filter_path


class WrongAnswer(RuntimeError):
    """A benchmarked request does not do what its name says."""


def get_json(target: Target, path: str) -> Any:
    """The JSON body of a GET that must answer 200 (else ``WrongAnswer``)."""
    conn = http.client.HTTPConnection(target.host, target.port, timeout=30)
    try:
        conn.request("GET", path, headers=target.headers)
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    if resp.status != 200:
        raise WrongAnswer(f"GET {path} answered {resp.status}: {body[:300]!r}")
    return json.loads(body)


def _expect(condition: bool, path: str, doc: Any) -> None:
    if not condition:
        raise WrongAnswer(f"GET {path} answered {json.dumps(doc)[:500]}")


def check_answers(scim: Target, baseline: Target, org: OrgData) -> None:
    i = random.Random(5).randrange(org.size)
    uid, name, email = org.user_ids[i], org.user_names[i], org.work_emails[i]

    path = f"/users/{org.id}/{uid}"
    doc = get_json(baseline, path)
    _expect(doc.get("id") == uid, path, doc)

    path = f"/scim/v2/Users/{uid}"
    doc = get_json(scim, path)
    _expect(doc.get("id") == uid and doc.get("userName") == name, path, doc)

    for expression in (f'userName eq "{name}"', f'emails[type eq "work"].value eq "{email}"'):
        path = filter_path(expression)
        doc = get_json(scim, path)
        found = [r.get("id") for r in doc.get("Resources", [])]
        _expect(doc.get("totalResults") == 1 and found == [uid], path, doc)

    start = org.size - 199
    path = f"/scim/v2/Users?startIndex={start}&count=100"
    doc = get_json(scim, path)
    _expect(doc.get("itemsPerPage") == 100 and doc.get("startIndex") == start, path, doc)
