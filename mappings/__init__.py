"""The mapping rules engine: pure Python, no Flask, no database (see the identity-model issue).

SCIM provisioning and SSO just-in-time creation both turn what the IdP said
into an ``ExternalIdentity`` and call ``resolve(identity, rules)``, so there is
one provisioning path. Rule sets are documents (YAML or JSON) checked by
``validate`` against the organization's licenses and roles.
"""

from mappings.conditions import Condition
from mappings.engine import MappingResult, diff, resolve
from mappings.formats import dump, load
from mappings.identity import (
    VOCABULARY,
    AttributeMap,
    ExternalIdentity,
    GroupRef,
    merge_identities,
)
from mappings.model import (
    CONTACT_FIELDS,
    MODES,
    STATUSES,
    Effects,
    Problem,
    Rule,
    RuleSet,
    RuleSetError,
)
from mappings.rules import validate
from mappings.templates import PLACEHOLDERS, TemplateError, render_username

__all__ = [
    "CONTACT_FIELDS",
    "MODES",
    "PLACEHOLDERS",
    "STATUSES",
    "VOCABULARY",
    "AttributeMap",
    "Condition",
    "Effects",
    "ExternalIdentity",
    "GroupRef",
    "MappingResult",
    "Problem",
    "Rule",
    "RuleSet",
    "RuleSetError",
    "TemplateError",
    "diff",
    "dump",
    "load",
    "merge_identities",
    "render_username",
    "resolve",
    "validate",
]
