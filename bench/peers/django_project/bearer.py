"""A static bearer token (``PEER_TOKEN``): the SCIM clients' way of signing in."""

import os

from django.http import HttpResponse

TOKEN = os.environ.get("PEER_TOKEN", "")


class _Client:
    is_authenticated = True
    is_anonymous = False


class BearerTokenMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path == "/healthz":
            return self.get_response(request)
        if not TOKEN or request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return HttpResponse(status=401)
        request.user = _Client()
        return self.get_response(request)
