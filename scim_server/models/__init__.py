"""ORM models, one module per concept. Every table is keyed by organization."""

from scim_server.models.attribute_value import AttributeValue
from scim_server.models.audit import AuditCheckpoint, AuditEvent, AuditHead, AuditSigningKey
from scim_server.models.console_access import ConsoleGrant
from scim_server.models.contact import Contact, ContactAvailability
from scim_server.models.credential import CredentialToken, PasswordHistory, UserPassword
from scim_server.models.credential_delivery import CredentialSchedule, CredentialSend
from scim_server.models.event import Event
from scim_server.models.group import Group, GroupMember
from scim_server.models.job import Job
from scim_server.models.license import License
from scim_server.models.lockout import AccountLockout
from scim_server.models.mail import MailOutbox
from scim_server.models.mfa import MfaFactor, MfaRecoveryCode
from scim_server.models.organization import Organization
from scim_server.models.resource_count import ResourceCount
from scim_server.models.role import Role, UserRole
from scim_server.models.rule_set import RuleSet
from scim_server.models.token import ScimToken
from scim_server.models.user import User
from scim_server.models.user_import import ImportRow, ImportUpload
from scim_server.models.webhook import WebhookAttempt, WebhookDelivery, WebhookSubscription

__all__ = [
    "AccountLockout",
    "AttributeValue",
    "AuditCheckpoint",
    "AuditEvent",
    "AuditHead",
    "AuditSigningKey",
    "ConsoleGrant",
    "Contact",
    "ContactAvailability",
    "CredentialSchedule",
    "CredentialSend",
    "CredentialToken",
    "Event",
    "Group",
    "GroupMember",
    "ImportRow",
    "ImportUpload",
    "Job",
    "License",
    "MailOutbox",
    "MfaFactor",
    "MfaRecoveryCode",
    "Organization",
    "PasswordHistory",
    "ResourceCount",
    "Role",
    "RuleSet",
    "ScimToken",
    "User",
    "UserPassword",
    "UserRole",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookSubscription",
]
