"""The provisioning log: append-only, hash-chained per organization, signed at the head."""

from scim_server.audit.context import AuditContext, current_context, use_context
from scim_server.audit.recorder import record, record_failure

__all__ = ["AuditContext", "current_context", "record", "record_failure", "use_context"]
