"""The champion history: rollback walks it down, skips what may not serve, and always ends."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from regressops.registry import champions

VERSIONS = st.sampled_from([str(v) for v in range(1, 6)])
STATUSES = st.sampled_from(["previous", "archived", "candidate", None])


def test_skips_archived_and_missing_versions_and_says_so() -> None:
    stack = [{"version": v} for v in ("1", "2", "3", "4")]
    status = {"1": "previous", "2": "archived", "3": None, "4": "champion"}
    pick = champions.pick_previous(stack, "4", status.get)
    assert pick.version == "1" and [e["version"] for e in pick.stack] == ["1"]
    assert pick.skipped == [
        "v3 (no longer exists)",
        "v2 (archived; restore it with --force --reason)",
    ]
    forced = champions.pick_previous(stack, "4", status.get, force=True)
    assert forced.version == "2" and forced.skipped == ["v3 (no longer exists)"]


def test_legacy_registry_without_history_rolls_back_once() -> None:
    assert champions.read_stack({}, "5", "3") == [
        {"version": "3", "why": "before the champion history"},
        {"version": "5", "why": "current"},
    ]
    assert champions.read_stack({champions.CHAMPIONS: "not json"}, "5", None) == [
        {"version": "5", "why": "current"}
    ]


def test_the_stored_history_fits_a_registered_model_tag() -> None:
    stack: list[dict] = []
    for i in range(200):
        stack = champions.push(stack, {"version": i, "by": "ops@host", "why": "x" * 500})
    text = champions.encode(stack)
    kept = json.loads(text)
    assert len(text) <= champions.MAX_CHARS and kept[-1]["version"] == "199"
    assert len(kept[-1]["why"]) == 120


@given(
    st.lists(VERSIONS, min_size=1, max_size=12),
    st.dictionaries(VERSIONS, STATUSES),
    st.booleans(),
)
def test_repeated_rollbacks_end_and_never_restore_what_may_not_serve(
    pushed: list[str], statuses: dict[str, str | None], force: bool
) -> None:
    stack = [{"version": v} for v in pushed]
    current = pushed[-1]
    for _ in range(len(pushed) + 1):  # each rollback takes at least one entry off the stack
        pick = champions.pick_previous(
            stack, current, lambda v: statuses.get(v, "previous"), force=force
        )
        if pick.version is None:
            break
        assert pick.version != current
        assert statuses.get(pick.version, "previous") is not None
        assert force or statuses.get(pick.version) != "archived"
        assert len(pick.stack) < len(stack) and pick.stack[-1]["version"] == pick.version
        statuses[current] = "archived"  # what rollback does to the champion it replaces
        stack, current = pick.stack, pick.version
        statuses[current] = "champion"
    else:
        raise AssertionError("rollback did not end")
