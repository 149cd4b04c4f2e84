"""pyodata (SAP's OData client, PyPI, unmodified) against the sandbox SAP C4C.

It reads `$metadata`, fetches a CSRF token the way pyodata's documentation does
(a HEAD on the service root with `x-csrf-token: fetch`, the token then set on the
requests session, whose cookie jar keeps the session cookie), queries leads
(filter on the change time, order, top, select, inline count, server paging
through `__next`), creates, reads, updates (with `If-Match`, and a stale ETag
refused with 412) and deletes leads, writes through `$batch` changesets (one
atomic changeset that fails whole), and checks the errors pyodata surfaces.
Only the service URL differs from a real tenant's.

Usage: python sap_c4c_sdk.py <description>
where <description> is the sandbox's JSON description (as printed by `crmsync
sandbox`: it needs `admin_url` and the `sap_c4c` object). Prints one line per
check; exits 1 at the first failure.
"""

import datetime
import json
import sys
import traceback

import pyodata
import requests
from pyodata.exceptions import HttpError

MARK = "@pyodata.example"

step_no = 0


def step(title):
    global step_no
    step_no += 1
    print(f"== {step_no}. {title}", flush=True)


def check(what, ok, got=None):
    if not ok:
        raise AssertionError(f"{what}: got {got!r}")
    print(f"ok   {what}", flush=True)


def refused(call, status, what):
    """Runs `call`, which must raise pyodata's HttpError with `status`; returns the
    OData error body (or the text when it is not JSON)."""
    try:
        got = call()
    except HttpError as e:
        check(f"{what}: HTTP {status}", e.response.status_code == status, e.response.status_code)
        try:
            return e.response.json()
        except ValueError:
            return e.response.text
    raise AssertionError(f"{what}: expected HTTP {status}, got {got!r}")


def session_for(c4c):
    session = requests.Session()
    session.auth = (c4c["username"], c4c["password"])
    return session


def fetch_token(session, url):
    response = session.head(url, headers={"x-csrf-token": "fetch"})
    token = response.headers.get("x-csrf-token", "")
    check("a HEAD with x-csrf-token: fetch answers a token", len(token) > 8, response.headers)
    check("and a session cookie", len(session.cookies) >= 1, session.cookies)
    session.headers.update({"x-csrf-token": token})


def metadata(service):
    step("$metadata parses into entity sets and types")
    names = {s.name for s in service.schema.entity_sets}
    for name in ("LeadCollection", "IndividualCustomerCollection", "ContactCollection"):
        check(f"entity set {name}", name in names, sorted(names))
    lead = service.schema.entity_type("Lead")
    check("Lead's key is ObjectID", [p.name for p in lead.key_proprties] == ["ObjectID"])
    check("ObjectID is not creatable", lead.proprty("ObjectID").creatable is False)
    check("ContactEMail is creatable", lead.proprty("ContactEMail").creatable is True)
    check("EntityLastChangedOn is Edm.DateTimeOffset",
          lead.proprty("EntityLastChangedOn").typ.name == "Edm.DateTimeOffset")
    codes = service.entity_sets.LeadQualificationLevelCodeCollection.get_entities().execute()
    check("the qualification code list reads", [c.Code for c in codes] == ["1", "2", "3"],
          [c.Code for c in codes])


def without_token(url, c4c):
    step("a write without the CSRF token is refused")
    service = pyodata.Client(url, session_for(c4c))
    request = service.entity_sets.LeadCollection.create_entity().set(Name="X", Company="Acme")
    body = refused(request.execute, 403, "create without a token")
    check("the body says why", "CSRF token validation failed" in str(body), body)


def create_read_update(service):
    step("create, read and update a lead")
    leads = service.entity_sets.LeadCollection
    lead = leads.create_entity().set(
        Name="Zoë Lefèvre", Company="Acme", ContactFirstName="Zoë", ContactLastName="Lefèvre",
        ContactEMail=f"zoe{MARK}", QualificationLevelCode="2",
    ).execute()
    check("create answers the new lead", lead.ObjectID and lead.ContactEMail == f"zoe{MARK}", lead)
    check("with an ETag", bool(lead.etag), lead.etag)
    check("and a change time as a datetime",
          isinstance(lead.EntityLastChangedOn, datetime.datetime), lead.EntityLastChangedOn)
    got = leads.get_entity(ObjectID=lead.ObjectID).execute()
    check("get_entity reads it back", got.Name == "Zoë Lefèvre", got.Name)
    etag = got.etag
    update = leads.update_entity(ObjectID=lead.ObjectID).set(ContactFirstName="Zoé")
    update.add_headers({"If-Match": etag})
    update.execute()
    check("an update with the current ETag passes",
          leads.get_entity(ObjectID=lead.ObjectID).execute().ContactFirstName == "Zoé")
    stale = leads.update_entity(ObjectID=lead.ObjectID).set(ContactFirstName="Old")
    stale.add_headers({"If-Match": etag})
    body = refused(stale.execute, 412, "an update with a stale ETag")
    check("an OData error body", body["error"]["message"]["lang"] == "en", body)

    no_company = leads.create_entity().set(Name="Nobody", ContactLastName="Nobody")
    body = refused(no_company.execute, 400, "a lead without a company")
    check("the message names Company", "Company" in body["error"]["message"]["value"], body)
    bad_code = leads.create_entity().set(Name="A", Company="Acme", QualificationLevelCode="9")
    body = refused(bad_code.execute, 400, "a code outside its list")
    check("INVALID_CODE", body["error"]["code"] == "INVALID_CODE", body)
    return lead.ObjectID


def queries(service, desc, c4c):
    step("query: filter, order, select, inline count, server paging")
    leads = service.entity_sets.LeadCollection
    since = "2000-01-01T00:00:00Z"
    result = (leads.get_entities()
              .filter(f"EntityLastChangedOn ge datetimeoffset'{since}'")
              .order_by("EntityLastChangedOn desc")
              .select("ObjectID,Name,EntityLastChangedOn")
              .count(inline=True)
              .top(3)
              .execute())
    check("top 3", len(result) == 3, len(result))
    check("an inline count", result.total_count and result.total_count >= 3, result.total_count)
    times = [r.EntityLastChangedOn for r in result]
    check("newest first", times == sorted(times, reverse=True), times)
    mine = leads.get_entities().filter(f"ContactEMail eq 'zoe{MARK}'").execute()
    check("a filter on the e-mail finds the lead", len(mine) == 1, len(mine))

    admin = desc["admin_url"]
    settings = requests.get(f"{admin}/sap_c4c/tenants/{c4c['tenant']}/settings").json()
    settings["page_size"] = 7
    requests.put(f"{admin}/sap_c4c/tenants/{c4c['tenant']}/settings", json=settings).raise_for_status()
    seen = []
    page = leads.get_entities().order_by("LeadID").execute()
    pages = 1
    while True:
        seen.extend(r.ObjectID for r in page)
        if not page.next_url:
            break
        page = leads.get_entities().next_url(page.next_url).execute()
        pages += 1
    total = leads.get_entities().count().execute()
    check("paging through __next reads every lead once", len(seen) == len(set(seen)) == total,
          (len(seen), total))
    check("in pages of 7", pages == -(-total // 7), pages)


def batch(service):
    step("$batch changesets")
    leads = service.entity_sets.LeadCollection

    def create(name, company="Acme"):
        return leads.create_entity().set(Name=name, Company=company, ContactEMail=f"{name}{MARK}")

    batch = service.create_batch()
    changeset = service.create_changeset()
    for i in range(3):
        changeset.add_request(create(f"batch{i}"))
    batch.add_request(changeset)
    result = batch.execute()
    created = result[0]
    check("a changeset of three creates answers three leads", len(created) == 3, created)
    check("each with its ObjectID", all(e.ObjectID for e in created), created)

    failing = service.create_batch()
    changeset = service.create_changeset()
    changeset.add_request(create("rolledback"))
    changeset.add_request(leads.create_entity().set(Name="no company"))
    failing.add_request(changeset)
    try:
        failing.execute()
        raise AssertionError("a changeset with a refused create must fail")
    except HttpError as e:
        check("a failing changeset answers one error", e.response.status_code == 400,
              e.response.status_code)
    kept = leads.get_entities().filter(f"ContactEMail eq 'rolledback{MARK}'").execute()
    check("and nothing of it is kept", len(kept) == 0, len(kept))
    return [e.ObjectID for e in created]


def deletes(service, ids):
    step("delete")
    leads = service.entity_sets.LeadCollection
    for object_id in ids:
        leads.delete_entity(ObjectID=object_id).execute()
    gone = refused(leads.get_entity(ObjectID=ids[0]).execute, 404, "a deleted lead")
    check("is not found", "error" in gone, gone)


def main():
    if len(sys.argv) < 2:
        raise SystemExit("usage: python sap_c4c_sdk.py <sandbox description JSON>")
    desc = json.loads(sys.argv[1])
    c4c = desc["sap_c4c"]
    for key in ("base_url", "username", "password"):
        check(f"description has sap_c4c.{key}", bool(c4c.get(key)), c4c.get(key))
    # The only change from a real tenant: the host.
    url = c4c["base_url"].rstrip("/") + "/sap/c4c/odata/v1/c4codataapi/"
    without_token(url, c4c)
    session = session_for(c4c)
    fetch_token(session, url)
    service = pyodata.Client(url, session)
    metadata(service)
    lead_id = create_read_update(service)
    queries(service, desc, c4c)
    ids = batch(service)
    deletes(service, ids + [lead_id])
    print(f"all {step_no} steps ok")


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        print("FAILED", file=sys.stderr)
        sys.exit(1)
