"""GETs of one user through the load benchmark's ceiling app, in-process (Flask test client).

The ceiling's side of an instruction count (``bench/instructions.sh ceiling-get``): the same
request as ``bench/inprocess.py get`` on the least this stack can do, so the ratio of the two
counts is the ratio the load benchmark's GET target is about, without a noisy machine's say.
"""

from __future__ import annotations

import argparse
import os
import tempfile

_FOLDER = tempfile.TemporaryDirectory(prefix="ceiling-inprocess-")  # removed at exit
os.environ.setdefault("CEILING_DATABASE_URL", f"sqlite:///{_FOLDER.name}/ceiling.db")

from ceiling_app import app  # noqa: E402 - after the database URL is set

USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["get"])
    parser.add_argument("--users", type=int, default=60)
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--passes", type=int, default=1, help="accepted for instructions.sh")
    args = parser.parse_args()
    client = app.test_client()
    ids = []
    for number in range(args.users):
        address = f"user{number}@example.com"
        document = {
            "schemas": [USER],
            "userName": address,
            "name": {"givenName": "Given", "familyName": "Family"},
            "emails": [{"value": address, "primary": True}],
            "active": True,
        }
        created = client.post("/scim/v2/Users", json=document)
        assert created.status_code == 201, created.data
        ids.append(created.get_json()["id"])
    for number in range(args.requests * args.passes):
        answer = client.get(f"/scim/v2/Users/{ids[number % len(ids)]}")
        assert answer.status_code == 200


if __name__ == "__main__":
    main()
