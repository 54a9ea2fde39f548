"""Shared sessions: one pool per upstream, sized by the users that share it."""

from __future__ import annotations

from stocksyncd.runtime.resources import SharedResources


async def test_pool_per_host_is_the_sum_of_its_users_concurrency() -> None:
    shared = SharedResources()
    try:
        users = [shared.for_integration(f"job{i}") for i in range(30)]
        sessions = {id(u.session("kak2c", limit_per_host=4)) for u in users}
        assert len(sessions) == 1  # one session for the host, not one per job
        assert shared.pool_limit("kak2c") == 120  # past aiohttp's default 10 per host
        session = users[0].session("kak2c", limit_per_host=4)
        assert session.connector is not None
        assert session.connector.limit == 0  # no cap across hosts: the limiters throttle
    finally:
        await shared.close()


async def test_a_user_leaving_shrinks_the_pool_and_the_last_closes_it() -> None:
    shared = SharedResources()
    try:
        a, b = shared.for_integration("a"), shared.for_integration("b")
        session = a.session("kak2c", limit_per_host=4)
        b.session("kak2c", limit_per_host=2)
        assert shared.pool_limit("kak2c") == 6
        await a.release()
        assert shared.pool_limit("kak2c") == 2
        await b.release()
        assert session.closed
        assert shared.pool_limit("kak2c") is None
    finally:
        await shared.close()


async def test_asking_twice_does_not_count_a_user_twice() -> None:
    shared = SharedResources()
    try:
        a = shared.for_integration("a")
        a.session("insales:main", limit_per_host=4)
        a.session("insales:main", limit_per_host=4)
        assert shared.pool_limit("insales:main") == 4
    finally:
        await shared.close()
