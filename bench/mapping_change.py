"""Time a group mapping's add and remove in an organisation of N groups (services layer,
one process): the groups a mapping matches are found by the policy's own rule, in Python, over
every group name of the organisation (services.access._members_matching).

    .venv/bin/python bench/mapping_change.py sqlite:////tmp/mapping.db 10000
    .venv/bin/python bench/mapping_change.py postgresql+psycopg://postgres@127.0.0.1:5432/DB 10000
"""

from __future__ import annotations

import sys
import time
import uuid

from sqlalchemy import insert

from scim_server.services import access, tokens
from scim_server.store.db import Database
from scim_server.store.migrate import upgrade
from scim_server.store.models import Group
from scim_server.store.types import utcnow

url, n = sys.argv[1], int(sys.argv[2])
db = Database(url)
upgrade(db.engine)
slug = f"mb{uuid.uuid4().hex[:6]}"
with db.transaction(write=True) as s:
    org = tokens.create_organization(s, slug, "MB")
    org_id = org.id
    now = utcnow()
    s.execute(
        insert(Group),
        [
            dict(
                id=str(uuid.uuid4()),
                org_id=org_id,
                display_name=f"Dept {i}",
                external_id=None,
                created_at=now,
                last_modified=now,
                version=1,
                owner_connection_id=None,
                data={},
            )
            for i in range(n)
        ],
    )
for _ in range(3):
    t = time.perf_counter()
    with db.transaction(write=True) as s:
        org = tokens.get_organization(s, slug)
        m = access.add_mapping(s, org, group_prefix="Dept 1", role="Editor")
    t1 = time.perf_counter() - t
    t = time.perf_counter()
    with db.transaction(write=True) as s:
        org = tokens.get_organization(s, slug)
        access.remove_mapping(s, org, m.mapping.id)
    t2 = time.perf_counter() - t
    print(f"{url.split(':')[0]} groups={n} add {t1 * 1000:.1f} ms remove {t2 * 1000:.1f} ms")
