"""The status page in headless Chromium, as a person would use it.

Run by tests/browser/run.sh, which starts the service (with ADMIN_TOKEN set) against the local
Redshift stand-in, and two more on SQLite in the access modes of a deployed stack: a public API
(--public-url) and one behind a JWT authorizer (--jwt-url). Each check prints one line; the last
line is "N passed, N failed". Screenshots of each state go to the --out folder.

What a browser cannot show here: API Gateway validating a JWT. Locally nothing validates the
token, so behind "JWT" the service refuses every data request (as it refuses one that reached it
without the gateway's verdict); the checks are that the shell loads without a token, asks for
one, and sends the one it is given.
"""

import argparse
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from playwright.sync_api import expect, sync_playwright

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

REDSHIFT_BADGE = re.compile(r"^☁\ufe0f? Redshift \(Cloud Primary\)$")
SQLITE_BADGE = "💾 SQLite (Local Backup)"
BANNER = "⚠️ Using local backup database - Some data may be out of sync"
HOSTILE_CONTACT = "Ada <b>Lovelace</b>"
HOSTILE_NOTE = (
    '<script>window.__hostile = "script"</script>'
    "<img src=x onerror=\"window.__hostile = 'img'\"> & \"quoted\""
)
REFRESH_MS = 30_000
# Not in the sample data that SQLite ships with.
OUTAGE_CONTACT = "Rear Admiral Hopper (outage)"
# In the sample data: what a page that shows no call data must not show.
SAMPLE_CONTACT = "Ada Lovelace"
PAGE_TOKEN = "page-token-0123456789"

# Chromium reports every HTTP error answer of fetch() as a console error. The only ones the checks
# provoke on purpose are the admin endpoints' refusals (and, behind JWT, the data's).
EXPECTED_REFUSAL = re.compile(r"Failed to load resource: the server responded with a status of 40[13]")


class Failed(Exception):
    pass


class Checks:
    """Runs named checks in order, printing one line each; stops at the first failure."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def __call__(self, name, check):
        try:
            check()
        except Exception as error:  # an AssertionError from expect() or our own Failed
            self.failed += 1
            detail = [line for line in str(error).splitlines() if line.strip()][:8] or [type(error).__name__]
            print(f"  FAIL  {name}")
            for line in detail:
                print(f"        {line}")
            raise Failed(name) from error
        self.passed += 1
        print(f"  ok    {name}")

    def summary(self):
        return f"browser: {self.passed} passed, {self.failed} failed"


def require(condition, message):
    if not condition:
        raise Failed(message)


def post(url, token):
    """An admin request from outside the page (another person, another tab)."""
    request = urllib.request.Request(url, method="POST", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def control(url, method, body=None):
    """Tells the Redshift stand-in to misbehave (POST /fault) or to stop (DELETE /fault)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + "/fault", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=15) as response:
        require(response.status < 300, f"the stand-in's control API answered {response.status}")


class StatusPage:
    def __init__(self, page, base_url):
        self.page = page
        self.base_url = base_url
        self.badge = page.locator("#db-indicator")
        self.banner = page.locator("#backup-banner")
        self.caption = page.locator("#calls-caption")
        self.admin_result = page.locator("#admin-result")
        self.record_result = page.locator("#record-result")

    def row_for(self, contact):
        return self.page.locator("#calls-body tr").filter(
            has=self.page.locator("th", has_text=contact)
        )

    def record_call(self, contact, notes, account="Analytical Engines Ltd", duration="95"):
        page = self.page
        page.get_by_label("Account").fill(account)
        page.get_by_label("Duration in seconds").fill(duration)
        page.get_by_label("Outcome").fill("Connected")
        page.get_by_label("Notes").fill(notes)
        # Keyboard: Enter in a text field submits the form.
        page.get_by_label("Contact name").fill(contact)
        page.get_by_label("Contact name").press("Enter")
        expect(self.record_result).to_contain_text("Recorded the call with")

    def admin(self, action, token):
        """Clicks an admin button with `token` in the field; returns the request the page sent."""
        self.page.get_by_label("Access token").fill(token)
        with self.page.expect_request(lambda r: r.url.endswith(f"/db/{action}")) as sent:
            self.page.locator(f"#{action}").click()
        return sent.value


def run(args, checks):
    out = args.out.rstrip("/")
    token = args.admin_token
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1100, "height": 900}, locale="en-US")
        page = context.new_page()
        console = []
        page.on("console", lambda m: console.append((m.type, m.text)))
        page.on("pageerror", lambda e: console.append(("pageerror", str(e))))
        requested_urls = []
        page.on("request", lambda r: requested_urls.append(r.url))
        # Fake timers, so that the 30-second refresh can be run without waiting for it.
        page.clock.install()
        ui = StatusPage(page, args.base_url)

        def no_console_errors(allowed=None):
            errors = [
                text
                for kind, text in console
                if kind in ("error", "pageerror") and not (allowed and allowed.search(text))
            ]
            require(not errors, f"console errors: {errors}")

        def loads():
            page.goto(args.base_url)
            expect(ui.badge).to_have_text(REDSHIFT_BADGE)
            expect(ui.banner).to_be_hidden()
            expect(ui.caption).to_contain_text("Served by ☁")
            # How fresh the answer is: the replica's last pull.
            expect(ui.caption).to_contain_text("data as of")
            expect(page.locator("#redshift-state")).to_have_text("✅ Available")
            page.evaluate("window.__sameDocument = true")

        checks("the page loads on Redshift: ☁️ badge, no banner, calls served by Redshift", loads)
        checks("the page loads with no console errors (its script and style pass the CSP)", no_console_errors)
        page.screenshot(path=f"{out}/01-redshift.png", full_page=True)

        def every_control_is_labelled():
            unlabelled = page.evaluate(
                """() => [...document.querySelectorAll('input, textarea, button')]
                    .filter(el => el.tagName === 'BUTTON'
                        ? el.textContent.trim() === ''
                        : el.labels.length === 0)
                    .map(el => el.id || el.outerHTML)"""
            )
            require(not unlabelled, f"controls without a label: {unlabelled}")

        checks("every field and button has a label", every_control_is_labelled)

        def hostile_note_is_text():
            ui.record_call(HOSTILE_CONTACT, HOSTILE_NOTE)
            row = ui.row_for(HOSTILE_CONTACT)
            expect(row).to_have_count(1)
            expect(row.locator("th")).to_have_text(HOSTILE_CONTACT)
            notes = row.locator("td.notes")
            require(notes.text_content() == HOSTILE_NOTE, f"notes shown as {notes.text_content()!r}")
            injected = page.locator("#calls-body script, #calls-body img, #calls-body b").count()
            require(injected == 0, f"{injected} elements made from call data")
            require(page.evaluate("window.__hostile") is None, "a script from the notes ran")

        checks("a call recorded with the form appears in the list; a hostile note renders as text",
               hostile_note_is_text)
        page.screenshot(path=f"{out}/02-hostile-note.png", full_page=True)

        def refreshes_by_itself():
            status, body = post(args.base_url + "db/force-sqlite", token)
            require(status == 200, f"force-sqlite from outside answered {status} {body}")
            expect(ui.badge).to_have_text(REDSHIFT_BADGE)  # nothing changes before the refresh
            page.clock.run_for(REFRESH_MS)
            expect(ui.badge).to_have_text(SQLITE_BADGE)
            expect(ui.banner).to_be_visible()
            expect(ui.banner).to_have_text(BANNER)
            expect(page.locator("#fallback-duration")).to_contain_text("On the backup for")
            expect(page.locator("#fallback-duration")).to_contain_text("(forced)")
            require(page.evaluate("window.__sameDocument") is True, "the page was reloaded")

        checks("after POST /db/force-sqlite the page shows 💾 and the banner within 30 s, without reloading",
               refreshes_by_itself)
        page.screenshot(path=f"{out}/03-sqlite.png", full_page=True)

        def records_on_sqlite():
            ui.record_call(OUTAGE_CONTACT, "Recorded during the outage", account="Navy", duration="600")
            expect(ui.record_result).to_contain_text("stored in 💾 SQLite")
            expect(ui.row_for(OUTAGE_CONTACT)).to_have_count(1)
            expect(ui.caption).to_contain_text("Served by 💾 SQLite (Local Backup)")
            expect(page.locator("#pending-writes")).to_have_text("1")

        checks("on SQLite the form still records; the list says SQLite served it; 1 write waits to sync",
               records_on_sqlite)

        refusals_from = len(console)

        def wrong_token_is_refused():
            sent = ui.admin("retry-redshift", "not-the-token")
            require(sent.all_headers().get("authorization") == "Bearer not-the-token",
                    "the token was not sent as an Authorization header")
            expect(ui.admin_result).to_have_text("Refused (403): The admin token is not valid.")
            expect(ui.badge).to_have_text(SQLITE_BADGE)

        checks("Retry Redshift with a wrong token shows the 403 and changes nothing", wrong_token_is_refused)
        page.screenshot(path=f"{out}/04-forbidden.png", full_page=True)

        def missing_token_is_refused():
            sent = ui.admin("force-sqlite", "")
            require("authorization" not in sent.all_headers(), "an empty token was sent")
            expect(ui.admin_result).to_contain_text("Refused (401): This admin endpoint needs")

        checks("Force SQLite without a token shows the 401", missing_token_is_refused)
        refusals_to = len(console)

        def recovers():
            sent = ui.admin("retry-redshift", token)
            require(sent.all_headers().get("authorization") == f"Bearer {token}", "token not sent")
            expect(ui.admin_result).to_contain_text("Now serving from ☁")
            # At once: no clock advance, the action's own refresh shows it.
            expect(ui.badge).to_have_text(REDSHIFT_BADGE)
            expect(ui.banner).to_be_hidden()
            expect(ui.caption).to_contain_text("Served by ☁")
            expect(page.locator("#pending-writes")).to_have_text("0")
            expect(ui.row_for(OUTAGE_CONTACT)).to_have_count(1)

        checks("Retry Redshift with the token against the stand-in: ☁️ at once, banner gone, the outage's call replayed",
               recovers)
        page.screenshot(path=f"{out}/05-back-on-redshift.png", full_page=True)

        def keyboard_force_and_retry():
            def admin_requests():
                return sum(1 for url in requested_urls if re.search(r"/db/(force-sqlite|retry-redshift)$", url))

            before = admin_requests()
            page.get_by_label("Access token").fill(token)
            # Enter in the token field reads again with the token, and switches nothing.
            with page.expect_response(lambda r: r.url.endswith("/db/status")):
                page.get_by_label("Access token").press("Enter")
            # A refresh started after the key press ends after anything the key press sent.
            with page.expect_response(lambda r: r.url.endswith("/db/status")):
                page.get_by_role("button", name="Refresh now").click()
            require(admin_requests() == before, "Enter in the token field sent an admin request")
            expect(ui.badge).to_have_text(REDSHIFT_BADGE)
            page.locator("#force-sqlite").focus()
            page.keyboard.press("Enter")
            expect(ui.badge).to_have_text(SQLITE_BADGE)
            expect(ui.banner).to_be_visible()
            page.keyboard.press("Tab")
            require(page.evaluate("document.activeElement.id") == "retry-redshift", "Tab order")
            page.keyboard.press("Enter")
            expect(ui.badge).to_have_text(REDSHIFT_BADGE)
            expect(ui.banner).to_be_hidden()

        checks("by keyboard: Enter in the token field refreshes and switches nothing; Enter on Force SQLite shows 💾 and the banner at once; Tab, Enter on Retry Redshift brings ☁️ back",
               keyboard_force_and_retry)

        def every_json_request_carries_the_token():
            page.get_by_label("Access token").fill(PAGE_TOKEN)
            sent = []
            listener = lambda r: sent.append(r) if "/db/" in r.url or "/api/" in r.url else None
            page.on("request", listener)
            with page.expect_response(lambda r: "/api/calls/history" in r.url):
                page.get_by_role("button", name="Refresh now").click()
            ui.record_call("Token Carrier", "Recorded with a token in the field")
            page.remove_listener("request", listener)
            paths = {urllib.parse.urlparse(r.url).path for r in sent}
            for path in ["/db/status", "/api/calls/history", "/api/calls"]:
                require(path in paths, f"no request to {path}: {sorted(paths)}")
            without = [r.url for r in sent if r.all_headers().get("authorization") != f"Bearer {PAGE_TOKEN}"]
            require(not without, f"requests without the token: {without}")
            # An empty field sends no header at all.
            page.get_by_label("Access token").fill("")
            with page.expect_request(lambda r: r.url.endswith("/db/status")) as status:
                page.get_by_role("button", name="Refresh now").click()
            require("authorization" not in status.value.all_headers(), "an empty token was sent")

        checks("every JSON request carries the access token as Authorization: Bearer; an empty field sends none",
               every_json_request_carries_the_token)

        def token_stays_out_of_urls_and_storage():
            secrets = (token, "not-the-token", PAGE_TOKEN)
            leaked = [url for url in requested_urls if any(s in url for s in secrets)]
            require(not leaked, f"token in request URLs: {leaked}")
            require(page.url == args.base_url, f"the page's URL changed to {page.url}")
            stored = page.evaluate("localStorage.length + sessionStorage.length + document.cookie.length")
            require(stored == 0, "the page stored something")
            cookies = context.cookies()
            require(not cookies, f"cookies: {cookies}")
            require(page.locator("#access-token").get_attribute("name") is None,
                    "the token field has a name, so a form could submit it")
            # A new visit starts without it: nothing kept it.
            page.get_by_label("Access token").fill(PAGE_TOKEN)
            page.reload()
            expect(page.get_by_label("Access token")).to_have_value("")
            expect(ui.badge).to_have_text(REDSHIFT_BADGE)

        checks("the token never appears in a URL or a cookie, nothing is stored, and a reload forgets it",
               token_stays_out_of_urls_and_storage)

        def only_the_provoked_refusals_were_logged():
            before = [(k, t) for k, t in console[:refusals_from]]
            during = [(k, t) for k, t in console[refusals_from:refusals_to]]
            after = [(k, t) for k, t in console[refusals_to:]]
            for kind, text in before + after:
                require(kind not in ("error", "pageerror"), f"console error: {text}")
            for kind, text in during:
                require(kind not in ("error", "pageerror") or EXPECTED_REFUSAL.search(text),
                        f"console error: {text}")


        def shows_a_real_outage():
            control(args.control_url, "POST", {"fault": "refuse-connections"})
            # The replica answers until its last pull is READ_MAX_STALENESS_MS (1 s) old; then
            # someone else's request has to pull, meets the outage and falls back; the page shows
            # it on its next refresh, with the reason.
            time.sleep(1.2)
            history = urllib.request.urlopen(args.base_url + "api/calls/history", timeout=30)
            require(json.load(history)["source"] == "sqlite", "the service did not fall back")
            page.get_by_role("button", name="Refresh now").click()
            expect(ui.badge).to_have_text(SQLITE_BADGE)
            expect(ui.banner).to_be_visible()
            expect(page.locator("#redshift-state")).to_have_text("❌ Unavailable")
            expect(page.locator("#redshift-message")).to_have_text("Connection refused")
            expect(page.locator("#redshift-failures")).to_have_text("1")
            expect(page.locator("#fallback-counts")).to_contain_text("1 fallback,")
            expect(page.locator("#fallback-duration")).not_to_contain_text("(forced)")
            page.set_viewport_size({"width": 960, "height": 760})
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=f"{out}/readme-sqlite.png")
            page.set_viewport_size({"width": 1100, "height": 900})
            control(args.control_url, "DELETE")
            ui.admin("retry-redshift", token)
            expect(ui.badge).to_have_text(REDSHIFT_BADGE)
            expect(ui.banner).to_be_hidden()
            expect(page.locator("#redshift-message")).to_have_text("Connected")

        checks("a real outage (Redshift refuses connections): 💾, the banner and the reason; back to ☁️ after",
               shows_a_real_outage)
        checks("no console errors besides the two refusals Chromium logs", only_the_provoked_refusals_were_logged)

        def readable_on_a_phone():
            phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                        has_touch=True, device_scale_factor=2, locale="en-US")
            small = phone.new_page()
            post(args.base_url + "db/force-sqlite", token)
            small.goto(args.base_url)
            expect(small.locator("#db-indicator")).to_have_text(SQLITE_BADGE)
            expect(small.locator("#backup-banner")).to_be_visible()
            overflow = small.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            require(overflow <= 0, f"the page is {overflow}px wider than the phone's screen")
            small.screenshot(path=f"{out}/06-phone-sqlite.png", full_page=True)
            post(args.base_url + "db/retry-redshift", token)
            phone.close()

        checks("on a 390 px phone screen the page fits its width (each call becomes a card)",
               readable_on_a_phone)

        def public_api_shows_no_call_data():
            visitor = browser.new_context(viewport={"width": 1100, "height": 900}, locale="en-US")
            public = visitor.new_page()
            asked = []
            public.on("request", lambda r: asked.append(r.url))
            public.clock.install()
            public.goto(args.public_url)
            expect(public.locator("#db-indicator")).to_have_text(SQLITE_BADGE)
            public.clock.run_for(REFRESH_MS)
            expect(public.locator("#last-refresh")).to_contain_text("Updated")
            require(public.locator("body").get_attribute("data-access") == "public", "not told the mode")
            history = [url for url in asked if "/api/calls" in url]
            require(not history, f"the page asked for call data: {history}")
            expect(public.locator("#calls-section")).to_be_hidden()
            expect(public.locator("#record-section")).to_be_hidden()
            expect(public.locator("#calls-hidden")).to_be_visible()
            expect(public.locator("#calls-hidden")).to_contain_text("shows no call data")
            require(SAMPLE_CONTACT not in public.content(), "call data in the page")
            public.screenshot(path=f"{out}/07-public-api.png", full_page=True)
            visitor.close()

        checks("on a public API the page shows the databases but asks for and shows no call data",
               public_api_shows_no_call_data)

        def jwt_shell_loads_and_asks_for_a_token():
            visitor = browser.new_context(viewport={"width": 1100, "height": 900}, locale="en-US")
            shell = visitor.new_page()
            with shell.expect_response(lambda r: r.url == args.jwt_url) as document:
                shell.goto(args.jwt_url)
            require(document.value.status == 200, f"the shell answered {document.value.status}")
            require("authorization" not in document.value.request.all_headers(),
                    "the navigation carried a token")
            expect(shell.locator("#auth-needed")).to_be_visible()
            expect(shell.locator("#calls-caption")).to_have_text(
                "Calls not shown: the API did not accept this page's token.")
            expect(shell.locator("#calls-body tr")).to_have_count(0)
            shell.screenshot(path=f"{out}/08-jwt-sign-in.png", full_page=True)
            shell.get_by_label("Access token").fill(PAGE_TOKEN)
            with shell.expect_request(lambda r: r.url.endswith("/db/status")) as status:
                shell.get_by_label("Access token").press("Enter")
            require(status.value.all_headers().get("authorization") == f"Bearer {PAGE_TOKEN}",
                    "the token was not sent")
            expect(shell.locator("#auth-needed")).to_be_hidden()
            stored = shell.evaluate("localStorage.length + sessionStorage.length + document.cookie.length")
            require(stored == 0, "the page stored something")
            visitor.close()

        checks("behind a JWT authorizer the shell loads without a token, asks for one, and sends the one it is given",
               jwt_shell_loads_and_asks_for_a_token)
        browser.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", required=True, help="the service's URL, ending in /")
    parser.add_argument("--admin-token", required=True)
    parser.add_argument("--control-url", required=True, help="the Redshift stand-in's control API")
    parser.add_argument("--public-url", required=True, help="the service told API_AUTHORIZATION=PUBLIC")
    parser.add_argument("--jwt-url", required=True, help="the service told API_AUTHORIZATION=JWT")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--out", default="target/browser")
    args = parser.parse_args()
    checks = Checks()
    print(f"Status page in Chromium at {args.base_url}")
    try:
        run(args, checks)
    except Failed:
        pass
    except Exception as error:  # the browser or the page could not be driven at all
        checks.failed += 1
        print(f"  FAIL  driving the page: {error}")
    print(checks.summary())
    print(f"Screenshots in {args.out}/")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
