"""Fuzz the self-service forms through the Flask test client: whatever a user types, the
answer is a page or a redirect (never a 500), and nothing typed comes back unescaped."""

from __future__ import annotations

from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import form_token

TEXT = st.text(st.characters(codec="utf-8"), max_size=400)     # utf-8: no lone surrogates
MARKER = "<b\"'>&"
OK_STATUSES = {200, 302, 400, 404, 429}
FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def post(client: FlaskClient, url: str, data: dict[str, str]) -> str:
    token = form_token(client.get("/me/password").data)
    response = client.post(url, data={**data, "csrf_token": token})
    assert response.status_code in OK_STATUSES, (url, data, response.status_code)
    page = response.get_data(as_text=True)
    assert MARKER not in page
    return page


@FUZZ
@given(st.booleans(), TEXT, TEXT, TEXT, TEXT)
def test_vacation_form(user_client: FlaskClient, enabled: bool, subject: str, body: str,
                       start: str, end: str) -> None:
    post(user_client, "/me/vacation", {"enabled": "1" if enabled else "", "body": body,
                                       "subject": subject + MARKER, "start": start,
                                       "end": end})
    assert MARKER not in user_client.get("/me/vacation").get_data(as_text=True)


@FUZZ
@given(st.lists(TEXT, max_size=12), st.booleans())
def test_forwarding_form(user_client: FlaskClient, targets: list[str], keep: bool) -> None:
    post(user_client, "/me/forwarding", {"targets": "\n".join([*targets, MARKER]),
                                         "keep_copy": "1" if keep else ""})


@FUZZ
@given(TEXT)
def test_app_password_label(user_client: FlaskClient, label: str) -> None:
    post(user_client, "/me/app-passwords", {"label": label[:60] + MARKER})


@FUZZ
@given(TEXT, st.sampled_from(["/me/two-factor/confirm", "/me/two-factor/disable",
                              "/me/password"]))
def test_codes_and_passwords(user_client: FlaskClient, text: str, url: str) -> None:
    post(user_client, url, {"code": text + MARKER, "old_password": text + MARKER,
                            "password": text, "password2": text})
