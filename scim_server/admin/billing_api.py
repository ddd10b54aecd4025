"""Admin API for billing (``/api/v1/billing``): the monthly total per license now, and the seat
changes of a period from the log (``services.billing``, as the console's Billing page)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Response, g, jsonify, request
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from scim_server.admin.apidoc import Out, always, api_doc, nullable
from scim_server.admin.blueprint import bp
from scim_server.admin.common import load
from scim_server.db import db
from scim_server.errors import InvalidValueError
from scim_server.services import billing

DATE_ERROR = "A date such as 2026-01-31."


class BillingArgs(Schema):
    class Meta:
        unknown = EXCLUDE

    since = fields.Date(data_key="from", load_default=None, error_messages={"invalid": DATE_ERROR})
    until = fields.Date(data_key="to", load_default=None, error_messages={"invalid": DATE_ERROR})
    limit = fields.Integer(load_default=1000, validate=validate.Range(min=0, max=10_000))

    @validates_schema
    def _period(self, data: dict[str, Any], **_kw: Any) -> None:
        since, until = _period(data)
        try:
            billing.check_period(since, until)
        except InvalidValueError as err:
            raise ValidationError(err.detail, "to") from None


def _period(data: dict[str, Any]) -> tuple[Any, Any]:
    first, last = billing.default_period(datetime.now(UTC).date())
    return data.get("since") or first, data.get("until") or last


class BillingLicenseOut(Out):
    id = always(fields.String)
    name = always(fields.String)
    seat_limit = nullable(fields.Integer)
    used = always(fields.Integer)
    price_cents = always(fields.Integer)
    currency = always(fields.String)
    monthly_cents = always(fields.Integer)


class BillingTotalOut(Out):
    currency = always(fields.String)
    monthly_cents = always(fields.Integer)


class BillingSummaryOut(Out):
    license_id = nullable(fields.String, metadata={"description": "null: renamed or deleted since"})
    license = always(fields.String)
    assigned = always(fields.Integer)
    released = always(fields.Integer)
    net = always(fields.Integer)
    monthly_cost_cents = always(fields.Integer)
    currency = nullable(fields.String)


class BillingDayOut(Out):
    day = always(fields.String)
    license_id = nullable(fields.String, metadata={"description": "null: renamed or deleted since"})
    license = always(fields.String)
    assigned = always(fields.Integer)
    released = always(fields.Integer)


class BillingChangeOut(Out):
    seq = always(fields.Integer)
    occurred_at = always(fields.String)
    license_id = nullable(fields.String)
    license = always(fields.String)
    change = always(fields.Integer, metadata={"description": "+1 a seat taken, -1 given back"})
    monthly_cost_cents = always(fields.Integer)
    currency = nullable(fields.String)
    user_id = nullable(fields.String)
    user_name = nullable(fields.String)
    action = always(fields.String)
    actor = nullable(fields.String)


class BillingOut(Out):
    """Monthly totals now; the period's seat changes per license, per day and one by one."""

    period = always(fields.Dict, metadata={"description": "from, to (days, both included)"})
    licenses = fields.List(fields.Nested(BillingLicenseOut), required=True)
    totals = fields.List(fields.Nested(BillingTotalOut), required=True)
    per_license = fields.List(fields.Nested(BillingSummaryOut), required=True)
    per_day = fields.List(fields.Nested(BillingDayOut), required=True)
    changes = fields.List(fields.Nested(BillingChangeOut), required=True)
    changes_truncated = always(fields.Boolean)


@bp.get("/billing")
@api_doc(tag="licenses", query=BillingArgs, response=BillingOut)
def get_billing() -> Response:
    """The monthly cost per license now, and the license changes of a period (default: this
    month)."""
    args = load(BillingArgs, request.args)
    since, until = _period(args)
    report = billing.report(db.session, g.org_id, since, until, max_changes=args["limit"])
    return jsonify(
        period={"from": since.isoformat(), "to": until.isoformat()},
        licenses=[
            {
                "id": lic.license_id,
                "name": lic.name,
                "seat_limit": lic.seat_limit,
                "used": lic.used,
                "price_cents": lic.price_cents,
                "currency": lic.currency,
                "monthly_cents": lic.monthly_cents,
            }
            for lic in report.current
        ],
        totals=[{"currency": c, "monthly_cents": n} for c, n in report.totals],
        per_license=[
            {
                "license_id": s.license_id,
                "license": s.name,
                "assigned": s.assigned,
                "released": s.released,
                "net": s.net,
                "monthly_cost_cents": s.cost_cents,
                "currency": s.currency or None,
            }
            for s in report.summary
        ],
        per_day=[
            {"day": d.isoformat(), "license_id": i, "license": name, "assigned": a, "released": r}
            for d, name, a, r, i in report.days
        ],
        changes=[billing.change_to_dict(c) for c in report.changes],
        changes_truncated=report.changes_truncated,
    )
