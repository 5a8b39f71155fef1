"""Sign-in, throttled: too many failed sign-ins for a username or from an address are
refused (429 with ``Retry-After``) before the password is checked (``traces/throttle.py``).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse

from traces import throttle


def client_address(request: HttpRequest) -> str:
    """The address the request came from, as the server saw it (behind a proxy, Daphne's
    ``--proxy-headers`` puts the client's own there)."""
    return str(request.META.get("REMOTE_ADDR") or "")


class ThrottledLoginView(LoginView):
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        username = str(request.POST.get("username", ""))
        refused = throttle.login_refused(username, client_address(request))
        if refused is None:
            return super().post(request, *args, **kwargs)
        # An unbound form: a bound one would check the password.
        context = self.get_context_data(form=AuthenticationForm(request), throttled=refused)
        response = self.render_to_response(context, status=429)
        response["Retry-After"] = str(refused.retry_after)
        return response

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        throttle.login_succeeded(form.get_user().get_username())
        return super().form_valid(form)

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        throttle.login_failed(str(form.data.get("username", "")), client_address(self.request))
        return super().form_invalid(form)
