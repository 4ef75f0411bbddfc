"""Rule order on the shared ALB while an API's Ingress moves between the interceptor and its pods."""

from __future__ import annotations

import pytest

from cortex_iac.render import routing


@pytest.mark.parametrize("endpoint", ["/a", "/a/b", "/x.y/z/w"])
def test_direct_rule_wins_the_tie_with_the_interceptor_rule_of_the_same_path(endpoint: str) -> None:
    direct = routing.group_order(endpoint, through_interceptor=False)
    interceptor = routing.group_order(endpoint, through_interceptor=True)
    assert direct < interceptor


def test_deeper_paths_come_first_whichever_way_they_route() -> None:
    orders = [routing.group_order(e, through_interceptor=i) for e in ("/a/b/c", "/a/b", "/a") for i in (False, True)]
    assert orders == sorted(orders) and len(set(orders)) == len(orders)


def test_orders_stay_in_the_controller_range() -> None:
    deepest = "/" + "/".join(["a"] * 500)  # the 1,000-character limit of networking.endpoint
    assert routing.group_order(deepest, through_interceptor=False) == -1000
    assert routing.group_order("/a", through_interceptor=True) == -2
