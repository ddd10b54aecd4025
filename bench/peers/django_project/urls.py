"""django-scim2's views under /scim/v2, as the benchmark's own server serves them."""

from django.http import HttpResponse
from django.urls import include, path

urlpatterns = [
    path("scim/v2/", include("django_scim.urls", namespace="scim")),
    path("healthz", lambda request: HttpResponse("ok")),
]
