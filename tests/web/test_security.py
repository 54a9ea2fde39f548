"""Token, login cookie, CSRF and HTML escaping."""

from __future__ import annotations

from yarl import URL

from stocksyncd.runtime.web import security
from stocksyncd.state.api import ReviewEntry

from .conftest import ClientFactory, FakeView, csrf_from, make_config, make_run

TOKEN = "s3cret-token"


def with_token(view: FakeView) -> FakeView:
    view.config = make_config(token=TOKEN)
    return view


async def test_pages_open_without_token(make_client: ClientFactory, view: FakeView) -> None:
    client = await make_client(view)
    for path in ("/", "/review", "/metrics"):
        assert (await client.get(path)).status == 200, path


async def test_token_required_when_set(make_client: ClientFactory, view: FakeView) -> None:
    client = await make_client(with_token(view))
    for path in ("/", "/review", "/metrics", "/runs/x"):
        resp = await client.get(path)
        assert resp.status == 401, path
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    resp = await client.post("/review/1/delete")
    assert resp.status == 401
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401
    right = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert right.status == 200


async def test_browser_is_sent_to_login(make_client: ClientFactory, view: FakeView) -> None:
    client = await make_client(with_token(view))
    resp = await client.get("/review", headers={"Accept": "text/html"}, allow_redirects=False)
    assert resp.status == 303
    location = URL(resp.headers["Location"])
    assert (location.path, location.query["next"]) == ("/login", "/review")


async def test_login_sets_an_hmac_cookie_not_the_token(make_client: ClientFactory,
                                                       view: FakeView) -> None:
    client = await make_client(with_token(view))
    csrf = await csrf_from(client, "/login")
    bad = await client.post("/login", data={"csrf_token": csrf, "token": "guess",
                                            "next": "/review"})
    assert bad.status == 401
    assert "That token is not right." in await bad.text()

    resp = await client.post("/login", data={"csrf_token": csrf, "token": TOKEN,
                                             "next": "/review"}, allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/review"
    cookie_header = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie_header
    assert "SameSite=Strict" in cookie_header
    assert TOKEN not in cookie_header
    assert (await client.get("/review")).status == 200


async def test_login_never_redirects_off_site(make_client: ClientFactory,
                                              view: FakeView) -> None:
    client = await make_client(with_token(view))
    csrf = await csrf_from(client, "/login")
    resp = await client.post("/login", data={"csrf_token": csrf, "token": TOKEN,
                                             "next": "//evil.example/"}, allow_redirects=False)
    assert resp.headers["Location"] == "/"


async def test_post_without_or_with_bad_csrf_is_refused(make_client: ClientFactory,
                                                        view: FakeView) -> None:
    client = await make_client(view)
    missing = await client.post("/integrations/warehouse/run")
    assert missing.status == 403
    assert "CSRF check failed" in await missing.text()
    forged = await client.post("/integrations/warehouse/run",
                               data={"csrf_token": "1767225600." + "0" * 64})
    assert forged.status == 403
    assert "not valid" in await forged.text()
    assert view.triggered == []


async def test_csrf_token_is_bound_to_the_session(make_client: ClientFactory,
                                                  view: FakeView) -> None:
    # A token minted for a signed-out browser is useless to a signed-in one.
    client = await make_client(with_token(view))
    anonymous = await csrf_from(client, "/login")
    headers = {"Authorization": f"Bearer {TOKEN}",
               "Cookie": f"{security.SESSION_COOKIE}={security.session_value(TOKEN, 2**40)}"}
    resp = await client.post("/integrations/warehouse/run", data={"csrf_token": anonymous},
                             headers=headers)
    assert resp.status == 403
    assert view.triggered == []


async def test_cross_origin_post_is_refused(make_client: ClientFactory,
                                            view: FakeView) -> None:
    client = await make_client(view)
    token = await csrf_from(client)
    resp = await client.post("/integrations/warehouse/run", data={"csrf_token": token},
                             headers={"Origin": "https://evil.example"})
    assert resp.status == 403
    assert "cross-origin" in await resp.text()
    resp = await client.post("/integrations/warehouse/run", data={"csrf_token": token},
                             headers={"Referer": "https://evil.example/page"})
    assert resp.status == 403
    host = f"http://{client.host}:{client.port}"
    ok = await client.post("/integrations/warehouse/run", data={"csrf_token": token},
                           headers={"Origin": host}, allow_redirects=False)
    assert ok.status == 303
    assert view.triggered == ["warehouse"]


async def test_expired_csrf_token(make_client: ClientFactory, view: FakeView,
                                  fake_clock: object) -> None:
    client = await make_client(view)
    token = await csrf_from(client)
    fake_clock.advance(security.CSRF_MAX_AGE_S + 1)  # type: ignore[attr-defined]
    resp = await client.post("/integrations/warehouse/run", data={"csrf_token": token})
    assert resp.status == 403
    assert "expired" in await resp.text()


XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


async def test_upstream_values_are_escaped(make_client: ClientFactory, view: FakeView) -> None:
    view.state.add_run(make_run("r1", "warehouse", errors=[XSS], conflicts=[XSS]))
    await view.state.add_review(ReviewEntry(
        "parts", 7, XSS, "hits", message=XSS,
        data={"hits": [{"mouser_pn": XSS, "manufacturer": XSS, "mpn": XSS,
                        "description": XSS, "availability": XSS,
                        "link": "javascript:alert(1)"}]},
    ))
    await view.state.add_review(ReviewEntry("parts", 8, "P8", "lifecycle",
                                            data={"old": XSS, "new": XSS}))
    client = await make_client(view)
    for path in ("/", "/review", "/runs/r1"):
        text = await (await client.get(path)).text()
        assert "<script>" not in text, path
        assert "<img src=x" not in text, path
        assert "&lt;script&gt;" in text, path
    review = await (await client.get("/review")).text()
    assert 'href="javascript:' not in review
