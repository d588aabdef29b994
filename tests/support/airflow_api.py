"""Logging in to a running Airflow's REST API (``tools/airflow_local.py``'s admin)."""

from __future__ import annotations

import json
import urllib.request
from typing import TYPE_CHECKING

from tools.airflow_local import ADMIN, admin_password

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["api_token"]


def api_token(url: str, home: Path) -> str:
    """Log in as the admin and return a bearer token for the REST API.

    :param url: the API server's base URL.
    :param home: the ``AIRFLOW_HOME`` whose generated admin password to use.
    :return: the access token.
    """
    body = json.dumps({"username": ADMIN, "password": admin_password(home)}).encode()
    request = urllib.request.Request(f"{url}/auth/token", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.load(response)["access_token"])
