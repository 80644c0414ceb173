"""`manage.py create_api_key ENVIRONMENT` prints a working key once."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from billing.api_keys import api_key_authenticate
from billing.models import ApiKey


def test_it_prints_a_key_that_authenticates(live):
    out, err = StringIO(), StringIO()
    call_command(
        "create_api_key", "live", "--name", "CI", "--role", "viewer", stdout=out, stderr=err
    )
    raw = out.getvalue().strip()
    key = api_key_authenticate(raw)
    assert key is not None
    assert (key.environment, key.name, key.role) == (live, "CI", "viewer")
    assert "will not be shown again" in err.getvalue()


def test_it_makes_developer_keys_by_default(sandbox):
    out = StringIO()
    call_command("create_api_key", "sandbox", stdout=out, stderr=StringIO())
    assert out.getvalue().startswith("sk_sandbox_")
    assert ApiKey.objects.get().role == "developer"


def test_it_names_the_problem_for_an_unknown_environment(live):
    with pytest.raises(CommandError, match="Unknown environment 'staging'.*live"):
        call_command("create_api_key", "staging", stdout=StringIO(), stderr=StringIO())
    assert ApiKey.objects.count() == 0
