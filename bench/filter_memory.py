"""Memory a client's filters leave in one process: RSS after each 100 list requests.

    .venv/bin/python bench/filter_memory.py                   # distinct filters, 150 comparisons
    .venv/bin/python bench/filter_memory.py --same            # one shape, new values
    .venv/bin/python bench/filter_memory.py --comparisons 4   # the largest shape remembered

Statements are remembered per filter *shape* (``services.paging``, SQLAlchemy's compiled cache,
``scim.filter``'s templates). A client (any SCIM token) may send filters of up to 200
comparisons, so what a large shape costs, and whether it is kept, bounds what one worker can be
made to hold. Each request here is ``GET /Users?filter=...`` of ``--comparisons`` terms joined
by ``or``, attributes and operators drawn at random (seeded) so each filter is a new shape
(``--same``: the one shape with new values). In-process, through the Flask test client, on a
fresh SQLite file; prints RSS (``/proc/self/status`` VmRSS) per 100 requests and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import random

from inprocess import build

ATTRIBUTES = ("userName", "title", "displayName", "nickName", "externalId", "emails.value")
OPERATORS = ("eq", "ne", "co", "sw", "ew", "gt")


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--comparisons", type=int, default=150)
    parser.add_argument("--same", action="store_true", help="one shape, new values")
    args = parser.parse_args()
    client, headers, _, _, _ = build(20)
    chooser = random.Random(1)
    start = rss_mib()
    print(f"after set-up: {start:.1f} MiB")
    samples = []
    for i in range(args.requests):
        terms = []
        for j in range(args.comparisons):
            if args.same:
                attribute, operator = ATTRIBUTES[j % 6], OPERATORS[j % 6]
            else:
                attribute, operator = chooser.choice(ATTRIBUTES), chooser.choice(OPERATORS)
            terms.append(f'{attribute} {operator} "{i % 10}{j}"')  # within 4,096 characters
        response = client.get(
            "/scim/v2/Users", query_string={"filter": " or ".join(terms)}, headers=headers
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        if (i + 1) % 100 == 0:
            samples.append(round(rss_mib(), 1))
            print(f"{i + 1:>6} requests: {samples[-1]:.1f} MiB", flush=True)
    print(json.dumps({**vars(args), "start_mib": round(start, 1), "rss_mib": samples}))


if __name__ == "__main__":
    main()
