"""Zendesk's official Sell client `basecrm` (PyPI, unmodified) against the sandbox
Zendesk Sell, with only `base_url` changed.

It runs the calls Sell users script with - users (list, self, retrieve), leads and
contacts (list with paging, sorting and filters, create, retrieve, partial update,
destroy), custom field definitions and lead conversions through the client's own
HTTP layer (`client.http_client`, which wraps and unwraps Sell's envelopes; the
client has no service for them) - and the errors it raises (RequestError,
ResourceError, RateLimitError), checking every reply.

Usage: python zendesk_sell_sdk.py <description>
where <description> is the sandbox's JSON description (as printed by `crmsync
sandbox`: it needs `admin_url` and the `zendesk_sell` object). Prints one line per
check; exits 1 at the first failure.
"""

import json
import sys
import traceback

import basecrm
import requests
from basecrm.errors import RateLimitError, RequestError, ResourceError

MARK = "@sdkpy.example"

step_no = 0


def step(title):
    global step_no
    step_no += 1
    print(f"== {step_no}. {title}", flush=True)


def check(what, ok, got=None):
    if not ok:
        raise AssertionError(f"{what}: got {got!r}")
    print(f"ok   {what}", flush=True)


def raises(call, exc_class, what):
    """Runs `call`, which must raise `exc_class`; returns the exception."""
    try:
        got = call()
    except exc_class as e:
        check(f"{what}: {exc_class.__name__}", True)
        return e
    except Exception as e:  # noqa: BLE001 - any other error is the failure to report
        raise AssertionError(f"{what}: expected {exc_class.__name__}, got {type(e).__name__}: {e}")
    raise AssertionError(f"{what}: expected {exc_class.__name__}, got {got!r}")


def main():
    description = json.loads(sys.argv[1])
    sell = description["zendesk_sell"]
    admin_url = description["admin_url"]
    client = basecrm.Client(access_token=sell["access_token"], base_url=sell["base_url"])
    # The script calls back to back, faster than Sell's 10 requests per second; the
    # per-second limit has its own Rust tests, the hourly one is checked at the end.
    raised = requests.patch(
        f"{admin_url}/zendesk_sell/accounts/{sell['account_id']}/limits",
        json={"per_second": 1000},
        timeout=20,
    )
    check("the per-second limit is raised for the script", raised.status_code == 200, raised.text)

    step("users")
    users = client.users.list(per_page=100)
    check("users are listed", len(users) >= 1, users)
    check("every user has an e-mail", all("@" in (u.email or "") for u in users), users)
    me = client.users.self()
    check("self is the token's user", me.id == sell["user_id"], me)
    check("self is retrievable by id", client.users.retrieve(me.id).email == me.email)

    step("leads: listing, paging, sorting")
    page = client.leads.list(page=1, per_page=5)
    check("a page of 5 leads", len(page) == 5, len(page))
    second = client.leads.list(page=2, per_page=5)
    check("page 2 holds other leads", not {l.id for l in page} & {l.id for l in second})
    recent = client.leads.list(per_page=100, sort_by="updated_at:desc")
    stamps = [l.updated_at for l in recent]
    check("sorted by updated_at, newest first", stamps == sorted(stamps, reverse=True), stamps[:5])

    step("leads: create, retrieve, partial update, filter, destroy")
    email = f"zoe{MARK}"
    lead = client.leads.create(
        first_name="Zoë",
        last_name="Łukasiewicz",
        email=email,
        organization_name="Acme",
        custom_fields={"score": 12, "source": "Form"},
    )
    check("created lead has an id", isinstance(lead.id, int), lead)
    check("custom fields come back as a map", lead.custom_fields.score == 12, lead.custom_fields)
    got = client.leads.retrieve(lead.id)
    check("retrieved lead has its e-mail", got.email == email, got)
    updated = client.leads.update(lead.id, title="CTO", custom_fields={"score": 40})
    check("update changes the title", updated.title == "CTO", updated)
    check("update keeps what was not sent", updated.first_name == "Zoë", updated)
    check("update merges custom fields", updated.custom_fields.source == "Form", updated.custom_fields)
    found = client.leads.list(email=email.upper())
    check("filter by e-mail finds it in any case", [l.id for l in found] == [lead.id], found)

    step("lead errors")
    e = raises(lambda: client.leads.create(first_name="Léa"), ResourceError, "a lead without a name")
    check("422", e.http_status == 422, e.http_status)
    check("code blank on last_name", e.errors[0].code == "blank" and e.errors[0].field == "last_name", e.errors)
    check("logref set", bool(e.logref), e.logref)
    e = raises(lambda: client.leads.list(per_page=200), RequestError, "per_page=200")
    check("400 invalid_param", e.http_status == 400 and e.errors[0].code == "invalid_param", e.errors)
    e = raises(lambda: client.leads.retrieve(1), RequestError, "an unknown lead")
    check("404 not_found", e.http_status == 404 and e.errors[0].code == "not_found", e.errors)
    e = raises(
        lambda: client.leads.update(lead.id, custom_fields={"nope": 1}),
        ResourceError,
        "an unknown custom field",
    )
    check("named", e.errors[0].field == "custom_fields.nope", e.errors)

    step("custom field definitions (the client's HTTP layer)")
    _, _, lead_fields = client.http_client.get("/lead/custom_fields")
    names = {f.name for f in lead_fields}
    check("lead custom fields listed", {"score", "source", "sync_to_plezi"} <= names, names)
    source = next(f for f in lead_fields if f.name == "source")
    check("a list field has choices", any(c.name == "Form" for c in source.choices), source)
    _, _, contact_fields = client.http_client.get("/contact/custom_fields")
    check("contact custom fields listed", any(f.name == "score" for f in contact_fields), contact_fields)

    step("lead conversion (the client's HTTP layer)")
    _, _, conversion = client.http_client.post("/lead_conversions", body={"lead_id": lead.id})
    check("conversion names the lead", conversion.lead_id == lead.id, conversion)
    contact = client.contacts.retrieve(conversion.individual_id)
    check("the contact has the lead's e-mail", contact.email == email, contact)
    check("the contact kept the score", contact.custom_fields.score == 40, contact.custom_fields)
    e = raises(lambda: client.leads.retrieve(lead.id), RequestError, "the converted lead")
    check("is gone (404)", e.http_status == 404, e.http_status)

    step("contacts")
    contacts = client.contacts.list(per_page=100, sort_by="updated_at:desc")
    check("contacts listed", len(contacts) >= 1, len(contacts))
    person = client.contacts.create(first_name="Inès", last_name="Nuñez", email=f"ines{MARK}")
    check("a person contact is named", person.name == "Inès Nuñez", person)
    person = client.contacts.update(person.id, title="Buyer")
    check("contact update is partial", person.title == "Buyer" and person.last_name == "Nuñez", person)
    check("contact destroyed", client.contacts.destroy(person.id) is True)
    check("converted contact destroyed", client.contacts.destroy(contact.id) is True)

    step("authentication and rate limits")
    stranger = basecrm.Client(access_token="0" * 64, base_url=sell["base_url"])
    e = raises(lambda: stranger.users.self(), RequestError, "an unknown token")
    check("401 unauthorized", e.http_status == 401 and e.errors[0].code == "unauthorized", e.errors)
    made = requests.post(f"{admin_url}/zendesk_sell/accounts", json={"limits": {"hourly": 1}}, timeout=20)
    check("a throttled account is made", made.status_code == 201, made.text)
    throttled = basecrm.Client(access_token=made.json()["access_token"], base_url=sell["base_url"])
    throttled.users.self()
    raises(lambda: throttled.users.self(), RateLimitError, "past the hourly allowance")

    print(f"all {step_no} steps ok", flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception:  # noqa: BLE001 - the traceback is the report
        traceback.print_exc()
        sys.exit(1)
