"""Admin API for jobs: what an organization-wide operation queued for the worker is doing."""

from __future__ import annotations

from flask import Response, g, jsonify
from marshmallow import fields

from scim_server.admin.apidoc import Out, always, api_doc, nullable
from scim_server.admin.blueprint import bp
from scim_server.db import db
from scim_server.services import jobs


class JobOut(Out):
    """A job queued for the worker: state, progress, result or error."""

    id = always(fields.String)
    kind = always(fields.String)
    state = always(fields.String)
    progress = always(fields.Dict, metadata={"description": "done, total"})
    result = fields.Raw(allow_none=True, required=True)
    error = nullable(fields.String)
    attempts = always(fields.Integer)
    created_at = nullable(fields.String)
    started_at = nullable(fields.String)
    finished_at = nullable(fields.String)
    heartbeat_at = nullable(fields.String)
    next_attempt_at = nullable(fields.String)


@bp.get("/jobs/<job_id>")
@api_doc(tag="jobs", response=JobOut)
def get_job(job_id: str) -> Response:
    """State, progress (done/total), result or error of one of this organization's jobs."""
    return jsonify(jobs.job_to_dict(jobs.get_job(db.session, g.org_id, job_id)))
