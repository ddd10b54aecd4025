"""A person's own way back in: "forgot password" and the pages of mailed links.

``views`` serves ``/sso/forgot``, ``/sso/reset/<token>`` and
``/sso/activate/<token>``; the work is ``scim_server.services.recovery``.
"""
