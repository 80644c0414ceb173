"""A person locked out of the admin login, under any spelling of their name, and an Admin
unlocking them (issue 14, item 1), in headless Chromium."""

from __future__ import annotations

from tests import factories

WRONG_TRIES = 5  # LOGIN_THROTTLE_MAX_FAILURES' default


def _submit(page, username: str, password: str) -> None:
    page.goto("/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")


def test_a_locked_user_is_refused_under_any_spelling_until_an_admin_unlocks_them(new_page, login):
    from playwright.sync_api import expect

    factories.user("tvictim", "Viewer")
    alice = factories.user("alice", "Admin")
    page = new_page()
    for _ in range(WRONG_TRIES):
        _submit(page, "tvictim", "wrong-password")
    expect(page.locator("#login-throttled")).to_contain_text("Too many failed logins")

    # The right password under fullwidth letters is refused too, and signs nobody in.
    _submit(page, "ｔｖｉｃｔｉｍ", "password")
    expect(page.locator("#login-throttled")).to_be_visible()
    page.goto("/admin/")
    assert "/admin/login/" in page.url

    # An Admin finds the attempt and deletes it: that unlocks the user name (and the address).
    admin_page = new_page(alice)
    admin_page.goto("/admin/axes/accessattempt/")
    expect(admin_page.locator("#result_list")).to_contain_text("tvictim")
    admin_page.locator("#result_list tbody tr th a").first.click()
    admin_page.click("a.deletelink")
    admin_page.click("input[type=submit]")
    expect(admin_page.locator(".messagelist")).to_contain_text("deleted successfully")

    login(page, "ｔｖｉｃｔｉｍ")  # the fullwidth spelling signs in as tvictim
    expect(page.locator("#user-tools")).to_contain_text("tvictim")
