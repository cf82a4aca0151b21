"""An absent ``primary`` reads as ``false`` in every filter, in SQL and in a PATCH value path alike.

RFC 7643 §2.4: "If not specified, the value of 'primary' SHALL be assumed to be 'false'." The
index rows a ``GET ?filter=`` reads store it so; the in-memory evaluator behind PATCH value paths
read an absent ``primary`` as absent, so (found by a fuzzing review) ``emails[primary eq false]``
found a user whose one email had no ``primary`` while ``remove emails[primary eq false]`` removed
nothing and ``add emails[primary eq false].display`` created a new email. Both must select the same
elements, and neither may write ``primary: false`` into a document.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api, patch_body

ELEMENTS: dict[str, list[dict[str, Any]]] = {
    "emails": [
        {"value": "a@example.com", "type": "work"},
        {"value": "b@example.com", "type": "home", "primary": True},
        {"value": "c@example.com", "type": "other", "primary": False},
    ],
    "phoneNumbers": [
        {"value": "+1 555 0001", "type": "work"},
        {"value": "+1 555 0002", "type": "mobile", "primary": True},
        {"value": "+1 555 0003", "type": "other", "primary": False},
    ],
}

#: A filter on ``primary``, and which of the three elements above it selects.
SELECTED = [
    ("primary eq false", (0, 2)),
    ("primary ne true", (0, 2)),
    ("primary pr", (0, 1, 2)),
    ("primary eq null", ()),
    ("primary ne null", (0, 1, 2)),
    ("not (primary eq true)", (0, 2)),
    ("primary eq true", (1,)),
    ("not (primary ne false)", (0, 2)),
]

CASES = [(attribute, text, chosen) for attribute in ELEMENTS for text, chosen in SELECTED]
IDS = [f"{attribute}[{text}]" for attribute, text, _ in CASES]


def _user(api: Api, attribute: str, label: str) -> dict[str, Any]:
    return api.create_user(f"{label}@example.com", **{attribute: ELEMENTS[attribute]})


def _selected_by_sql(api: Api, user: dict[str, Any], attribute: str, text: str) -> list[int]:
    """The elements ``attribute[text]`` selects in SQL: one lookup per element, by its value."""
    chosen = []
    for index, element in enumerate(ELEMENTS[attribute]):
        found = api.list_users(
            filter=f'userName eq "{user["userName"]}" and '
            f'{attribute}[({text}) and value eq "{element["value"]}"]'
        )
        if found["totalResults"]:
            chosen.append(index)
    return chosen


@pytest.mark.parametrize(("attribute", "text", "chosen"), CASES, ids=IDS)
def test_a_filter_and_a_patch_value_path_select_the_same_elements(
    api: Api, attribute: str, text: str, chosen: tuple[int, ...]
) -> None:
    user = _user(api, attribute, attribute)
    assert _selected_by_sql(api, user, attribute, text) == list(chosen)
    found = api.list_users(filter=f'userName eq "{user["userName"]}" and {attribute}[{text}]')
    assert found["totalResults"] == (1 if chosen else 0)

    # remove: the elements the filter selects go, the others stay exactly as they were
    response = api.patch(
        f"/Users/{user['id']}", patch_body({"op": "remove", "path": f"{attribute}[{text}]"})
    )
    assert response.status_code == 200, response.get_json()
    kept = [e for i, e in enumerate(ELEMENTS[attribute]) if i not in chosen]
    assert response.get_json().get(attribute, []) == kept
    assert api.get(f"/Users/{user['id']}").get_json().get(attribute, []) == kept

    # add through the path: every selected element gets the sub-attribute, no element is created
    other = _user(api, attribute, f"{attribute}-add")
    response = api.patch(
        f"/Users/{other['id']}",
        patch_body({"op": "add", "path": f"{attribute}[{text}].display", "value": "picked"}),
    )
    if not chosen:  # no target, and a filter that describes no element to create
        assert response.status_code == 400, response.get_json()
        assert response.get_json()["scimType"] == "noTarget"
        return
    assert response.status_code == 200, response.get_json()
    expected = [
        {**e, "display": "picked"} if i in chosen else e for i, e in enumerate(ELEMENTS[attribute])
    ]
    assert response.get_json()[attribute] == expected  # no primary: false written anywhere
    assert api.get(f"/Users/{other['id']}").get_json()[attribute] == expected
    # and SQL now finds the marked elements exactly
    marked = api.list_users(
        filter=f'userName eq "{other["userName"]}" and {attribute}[display eq "picked"]'
    )
    assert marked["totalResults"] == 1
    assert _selected_by_sql(api, other, attribute, text) == list(chosen)


def test_replace_through_primary_eq_false_updates_the_email_without_primary(api: Api) -> None:
    """The reviewer's case: one email, no ``primary``."""
    user = api.create_user("one@example.com", emails=[{"value": "one@example.com", "type": "work"}])
    assert api.list_users(filter="emails[primary eq false]")["totalResults"] == 1
    response = api.patch(
        f"/Users/{user['id']}",
        patch_body({"op": "add", "path": "emails[primary eq false].display", "value": "Work"}),
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["emails"] == [
        {"value": "one@example.com", "type": "work", "display": "Work"}
    ]
    response = api.patch(
        f"/Users/{user['id']}", patch_body({"op": "remove", "path": "emails[primary eq false]"})
    )
    assert response.status_code == 200, response.get_json()
    assert "emails" not in response.get_json()
