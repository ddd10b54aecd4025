"""Admin API for jobs: what an organization-wide operation queued for the worker is doing."""

from __future__ import annotations

from flask import Response, g, jsonify

from scim_server.admin.blueprint import bp
from scim_server.db import db
from scim_server.services import jobs


@bp.get("/jobs/<job_id>")
def get_job(job_id: str) -> Response:
    """State, progress (done/total), result or error of one of this organization's jobs."""
    return jsonify(jobs.job_to_dict(jobs.get_job(db.session, g.org_id, job_id)))
