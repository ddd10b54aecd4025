"""Importing users from a spreadsheet (CSV or XLSX): the console's Import page and
``scim-server import users``.

An endpoint layer like SCIM's own: each row becomes a SCIM User body and goes
through the same protocol parsing (``scim.resources.parse_resource``, a
``UserPatch`` for an existing user) and the same services
(``services.users.create_user`` / ``update_user``) as a SCIM create or PATCH, so
rules, seats, events and uniqueness behave exactly as they do for an IdP. One
difference: a created account joins the settings' default groups (no IdP sends its
memberships).
"""
