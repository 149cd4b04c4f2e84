"""simple-salesforce (PyPI, unmodified) against the sandbox Salesforce.

simple-salesforce hard-codes `https://{host}` for every REST call (it keeps only the
host and port of `instance_url`), while the sandbox serves Salesforce over plain HTTP
at its root paths. So this script starts a small TLS-terminating proxy in front of the
sandbox (Python `ssl` + `http.server`, a throwaway self-signed certificate made with
`openssl`) and hands the SDK a `requests.Session` that trusts that certificate: the SDK
itself is used as it ships, with only the instance changed. simple-salesforce's own
logins post to `https://{login|test}.salesforce.com`, so the access token comes from
the sandbox's token endpoint (refresh grant), posted here with plain `requests`.

Then it runs the calls Salesforce users script with - query, queryAll, query_more,
sObject create/get/update/delete, sObject Collections through `restful()`, describe,
limits, getUpdated/getDeleted - and the errors the SDK raises, checking every reply.

Usage: python salesforce_sdk.py <description>
where <description> is the sandbox's JSON description (as printed by `crmsync
sandbox`: it needs `admin_url` and the `salesforce` object), else the environment's
SALESFORCE_SANDBOX. Prints one line per check; exits 1 at the first failure.
"""

import base64
import datetime
import hashlib
import hmac
import http.client
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import threading
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

VERSION = "62.0"
MARK = "@sdkpy.example"
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000$")
# Enough rows for a query with batchSize=200 to take more than one page.
PAGED = 250

step_no = 0


def step(title):
    global step_no
    step_no += 1
    print(f"== {step_no}. {title}", flush=True)


def check(what, ok, got=None):
    if not ok:
        raise AssertionError(f"{what}: got {got!r}")
    print(f"ok   {what}", flush=True)


def refused(call, exc_class, status, code, what):
    """Runs `call`, which must raise `exc_class` with `status` and a Salesforce error
    list whose first errorCode is `code`; returns that first error."""
    try:
        got = call()
    except SalesforceError as e:
        check(f"{what}: {exc_class.__name__}", isinstance(e, exc_class), type(e).__name__)
        check(f"{what}: HTTP {status}", e.status == status, e.status)
        errors = e.content
        check(f"{what}: a JSON error list", isinstance(errors, list) and len(errors) >= 1, errors)
        check(f"{what}: {code}", errors[0].get("errorCode") == code, errors)
        check(f"{what}: a message", isinstance(errors[0].get("message"), str) and errors[0]["message"], errors)
        return errors[0]
    raise AssertionError(f"{what}: expected {exc_class.__name__} {code}, got a reply {got!r}")


# --- the TLS proxy ---------------------------------------------------------------

HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}


def tls_proxy(upstream, workdir):
    """Serves HTTPS on 127.0.0.1 (a self-signed certificate for IP 127.0.0.1) and
    forwards each request as is to `upstream` (http://host:port). Returns (port,
    certificate path)."""
    cert = os.path.join(workdir, "cert.pem")
    key = os.path.join(workdir, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", key, "-out", cert, "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    target = urllib.parse.urlsplit(upstream)

    class Forward(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def forward(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            finally:
                conn.close()
            self.send_response_only(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in HOP and k.lower() != "content-length":
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = forward

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1], cert


# --- the sandbox outside the SDK: its token endpoint and admin API ---------------

def token(sf_desc, refresh_token=None):
    """The refresh grant, as a Salesforce integration posts it; checks the reply."""
    reply = requests.post(
        f"{sf_desc['login_url']}/services/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "client_id": sf_desc["client_id"],
            "client_secret": sf_desc["client_secret"],
            "refresh_token": refresh_token or sf_desc["refresh_token"],
        },
        timeout=30,
    )
    return reply


def admin(desc, method, path, body=None):
    reply = requests.request(method, f"{desc['admin_url']}{path}", json=body, timeout=30)
    if reply.status_code >= 300:
        raise AssertionError(f"admin {method} {path}: HTTP {reply.status_code} {reply.text}")
    return reply.json() if reply.content else None


# --- the steps ---------------------------------------------------------------------

def oauth(sf_desc):
    step("OAuth refresh grant at the sandbox's token endpoint (for the SDK's session id)")
    reply = token(sf_desc)
    check("token: HTTP 200", reply.status_code == 200, (reply.status_code, reply.text))
    body = reply.json()
    check("token: access_token", isinstance(body.get("access_token"), str) and body["access_token"], body)
    check("token: instance_url is the description's", body.get("instance_url") == sf_desc["instance_url"], body.get("instance_url"))
    check("token: token_type Bearer", body.get("token_type") == "Bearer", body.get("token_type"))
    check("token: no new refresh_token", "refresh_token" not in body, body)
    ident = body.get("id", "")
    check("token: id is {login}/id/{org}/{user}", re.fullmatch(re.escape(sf_desc["login_url"]) + r"/id/00D\w{15}/005\w{15}", ident) is not None, ident)
    check("token: id names the org", ident.split("/")[-2] == sf_desc["org_id"], ident)
    check("token: issued_at in ms", re.fullmatch(r"\d{13}", body.get("issued_at", "")) is not None, body.get("issued_at"))
    want = base64.b64encode(hmac.new(sf_desc["client_secret"].encode(), (ident + body["issued_at"]).encode(), hashlib.sha256).digest()).decode()
    check("token: signature = HMAC-SHA256(secret, id + issued_at)", body.get("signature") == want, body.get("signature"))

    bad = token(sf_desc, refresh_token="5Aep861bogus")
    check("token with a bad refresh token: HTTP 400", bad.status_code == 400, bad.status_code)
    check("token with a bad refresh token: invalid_grant", bad.json().get("error") == "invalid_grant", bad.text)
    return body


def connect(access_token, port, cert):
    session = requests.Session()
    session.verify = cert
    session.trust_env = False
    return Salesforce(session_id=access_token, instance_url=f"https://127.0.0.1:{port}", version=VERSION, session=session)


def resources(sf):
    step("resources of the version: restful('') -> GET /services/data/v62.0/")
    got = sf.restful("")
    for key in ("sobjects", "query", "queryAll", "limits", "composite"):
        check(f"resources: {key}", got.get(key) == f"/services/data/v{VERSION}/{key}", got.get(key))
    usage = sf.api_usage.get("api-usage")
    check("Sforce-Limit-Info read into api_usage", usage is not None and 0 < usage.used <= usage.total, sf.api_usage)


def describe(sf):
    step("describe global: describe() -> GET sobjects")
    glob = sf.describe()
    names = {o["name"]: o for o in glob["sobjects"]}
    for name in ("Lead", "Contact", "User"):
        check(f"describe global: {name}", name in names, sorted(names))
    check("describe global: Lead is queryable and createable", names["Lead"].get("queryable") is True and names["Lead"].get("createable") is True, names["Lead"])
    check("describe global: Lead's urls", names["Lead"].get("urls", {}).get("describe") == f"/services/data/v{VERSION}/sobjects/Lead/describe", names["Lead"].get("urls"))

    step("describe Lead: Lead.describe() -> GET sobjects/Lead/describe")
    lead = sf.Lead.describe()
    check("describe Lead: name", lead.get("name") == "Lead", lead.get("name"))
    fields = {f["name"]: f for f in lead["fields"]}
    for name, ftype in [("Id", "id"), ("LastName", "string"), ("Company", "string"), ("Email", "email"),
                        ("Phone", "phone"), ("LeadSource", "picklist"), ("Status", "picklist"),
                        ("HasOptedOutOfEmail", "boolean"), ("OwnerId", "reference"), ("IsConverted", "boolean"),
                        ("ConvertedContactId", "reference"), ("ConvertedDate", "date"), ("CreatedDate", "datetime"),
                        ("SystemModstamp", "datetime"), ("Plezi_URL__c", "url"), ("Sync_To_Plezi__c", "boolean")]:
        f = fields.get(name)
        check(f"describe Lead: {name} is {ftype}", f is not None and f.get("type") == ftype, f and f.get("type"))
    for name in ("LastName", "Company"):
        f = fields[name]
        check(f"describe Lead: {name} required (not nillable, createable)", f["nillable"] is False and f["createable"] is True, (f["nillable"], f["createable"]))
    check("describe Lead: Email nillable and updateable", fields["Email"]["nillable"] is True and fields["Email"]["updateable"] is True, fields["Email"])
    for name in ("Id", "IsConverted", "CreatedDate", "SystemModstamp"):
        f = fields[name]
        check(f"describe Lead: {name} read-only", f["createable"] is False and f["updateable"] is False, (f["createable"], f["updateable"]))
    for name in ("Plezi_URL__c", "Sync_To_Plezi__c"):
        check(f"describe Lead: {name} custom", fields[name]["custom"] is True, fields[name]["custom"])
    check("describe Lead: LastName not custom", fields["LastName"]["custom"] is False, fields["LastName"]["custom"])
    status = fields["Status"]
    check("describe Lead: Status restricted", status.get("restrictedPicklist") is True, status.get("restrictedPicklist"))
    values = {v["value"]: v for v in status.get("picklistValues", [])}
    check("describe Lead: Status has Open - Not Contacted, the default", values.get("Open - Not Contacted", {}).get("defaultValue") is True, values)
    check("describe Lead: picklist values are active, labelled", all(v.get("active") is True and v.get("label") for v in values.values()), values)
    check("describe Lead: LeadSource values", len(fields["LeadSource"].get("picklistValues", [])) > 0, fields["LeadSource"])
    check("describe Lead: OwnerId refers to User", "User" in (fields["OwnerId"].get("referenceTo") or []), fields["OwnerId"].get("referenceTo"))

    step("describe Contact and basic info: Contact.describe(), Lead.metadata()")
    contact = {f["name"]: f for f in sf.Contact.describe()["fields"]}
    check("describe Contact: AccountId, no Company", "AccountId" in contact and "Company" not in contact, sorted(contact))
    check("describe Contact: LastName required", contact["LastName"]["nillable"] is False, contact["LastName"])
    meta = sf.Lead.metadata()
    check("Lead.metadata(): objectDescribe names Lead", meta.get("objectDescribe", {}).get("name") == "Lead", meta.get("objectDescribe"))
    check("Lead.metadata(): recentItems is a list", isinstance(meta.get("recentItems"), list), meta.get("recentItems"))
    return fields


def limits(sf):
    step("limits: limits() -> GET limits/")
    got = sf.limits()
    daily = got.get("DailyApiRequests", {})
    check("limits: DailyApiRequests Max and Remaining", isinstance(daily.get("Max"), int) and isinstance(daily.get("Remaining"), int), daily)
    check("limits: 0 <= Remaining < Max", 0 <= daily["Remaining"] < daily["Max"], daily)
    usage = sf.api_usage["api-usage"]
    check("limits: Sforce-Limit-Info agrees with Max", usage.total == daily["Max"], (usage, daily))


def sobject_rows(sf, fields):
    lead_source = fields["LeadSource"]["picklistValues"][0]["value"]
    # A Status other than the default, and not a converted one (those come from a conversion).
    status = next(v["value"] for v in fields["Status"]["picklistValues"] if not v["defaultValue"] and "Converted" not in v["value"])
    step("sObject create: Lead.create() -> POST sobjects/Lead/")
    made = sf.Lead.create({"FirstName": "Ada", "LastName": "Sdk", "Company": "SDK Co", "Email": f"ada{MARK}",
                           "LeadSource": lead_source, "Plezi_URL__c": "https://plezi.example/ada"})
    check("create: success, no errors", made.get("success") is True and made.get("errors") == [], made)
    lead_id = made.get("id", "")
    check("create: an 18-char Lead id (00Q)", len(lead_id) == 18 and lead_id.startswith("00Q"), lead_id)

    step("sObject get: Lead.get(id) -> GET sobjects/Lead/{id}")
    got = sf.Lead.get(lead_id)
    check("get: attributes", got.get("attributes") == {"type": "Lead", "url": f"/services/data/v{VERSION}/sobjects/Lead/{lead_id}"}, got.get("attributes"))
    check("get: Id", got.get("Id") == lead_id, got.get("Id"))
    check("get: the fields written", (got["FirstName"], got["LastName"], got["Company"], got["Email"], got["Plezi_URL__c"]) ==
          ("Ada", "Sdk", "SDK Co", f"ada{MARK}", "https://plezi.example/ada"), got)
    check("get: Status defaults to Open - Not Contacted", got.get("Status") == "Open - Not Contacted", got.get("Status"))
    check("get: booleans are JSON booleans", got.get("HasOptedOutOfEmail") is False and got.get("IsConverted") is False and got.get("Sync_To_Plezi__c") is False, got)
    check("get: unset fields are null", got.get("Phone") is None and got.get("ConvertedContactId") is None, got)
    for name in ("CreatedDate", "LastModifiedDate", "SystemModstamp"):
        check(f"get: {name} like 2026-11-21T10:00:00.000+0000", DATETIME.match(got.get(name) or "") is not None, got.get(name))
    check("get: OwnerId is a User", (got.get("OwnerId") or "").startswith("005"), got.get("OwnerId"))
    check("get: IsDeleted false", got.get("IsDeleted") is False, got.get("IsDeleted"))

    limited = sf.Lead.get(lead_id, params={"fields": "Id,Email"})
    check("get with fields=Id,Email: only those", sorted(k for k in limited if k != "attributes") == ["Email", "Id"], sorted(limited))

    step("sObject update: Lead.update(id, ...) -> PATCH sobjects/Lead/{id}")
    code = sf.Lead.update(lead_id, {"Title": "CTO", "HasOptedOutOfEmail": True, "Status": status})
    check("update: 204", code == 204, code)
    after = sf.Lead.get(lead_id)
    check(f"update: read back (Status {status})", (after["Title"], after["HasOptedOutOfEmail"], after["Status"]) == ("CTO", True, status), after)
    check("update: SystemModstamp moved on", after["SystemModstamp"] >= got["SystemModstamp"], (got["SystemModstamp"], after["SystemModstamp"]))
    check("update: CreatedDate kept", after["CreatedDate"] == got["CreatedDate"], after["CreatedDate"])

    step("sObject errors the SDK raises")
    err = refused(lambda: sf.Lead.create({"LastName": "NoCompany", "Email": f"nocompany{MARK}"}),
                  SalesforceMalformedRequest, 400, "REQUIRED_FIELD_MISSING", "create without Company")
    check("create without Company: fields [Company]", err.get("fields") == ["Company"], err)
    check("create without Company: message", err.get("message") == "Required fields are missing: [Company]", err.get("message"))
    err = refused(lambda: sf.Lead.create({"LastName": "BadMail", "Company": "X", "Email": "not-an-email"}),
                  SalesforceMalformedRequest, 400, "INVALID_EMAIL_ADDRESS", "create with a bad e-mail")
    check("create with a bad e-mail: fields [Email]", err.get("fields") == ["Email"], err)
    err = refused(lambda: sf.Lead.update(lead_id, {"Status": "Nope"}),
                  SalesforceMalformedRequest, 400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "update with a bad Status")
    check("update with a bad Status: fields [Status]", err.get("fields") == ["Status"], err)
    refused(lambda: sf.Lead.update(lead_id, {"IsConverted": True}),
            SalesforceMalformedRequest, 400, "INVALID_FIELD_FOR_INSERT_UPDATE", "update of a read-only field")
    refused(lambda: sf.Lead.create({"LastName": "X", "Company": "X", "Nope__c": 1}),
            SalesforceMalformedRequest, 400, "INVALID_FIELD", "create with an unknown field")
    refused(lambda: sf.Lead.get("00Q000000000000AAA"), SalesforceResourceNotFound, 404, "NOT_FOUND", "get of an unknown id")
    return lead_id


def converted(desc, sf):
    step("a lead a rep converted (admin API): query, then an update refused")
    made = sf.Lead.create({"LastName": "Convert", "Company": "SDK Co", "Email": f"convert{MARK}"})
    conversion = admin(desc, "POST", f"/salesforce/leads/{made['id']}/convert")
    rows = sf.query("SELECT Id, IsConverted, ConvertedContactId, ConvertedDate FROM Lead WHERE IsConverted = true")
    check("converted leads listed", rows["totalSize"] >= 1 and len(rows["records"]) == rows["totalSize"], rows["totalSize"])
    first = next((r for r in rows["records"] if r["Id"] == made["id"]), None)
    check("converted: the lead converted is among them", first is not None, rows["records"][:3])
    check("converted: its ConvertedContactId", first["ConvertedContactId"] == conversion.get("contact_id"), (first, conversion))
    check("converted: IsConverted true, a Contact (003), a date", first["IsConverted"] is True and (first["ConvertedContactId"] or "").startswith("003")
          and re.fullmatch(r"\d{4}-\d{2}-\d{2}", first["ConvertedDate"] or "") is not None, first)
    refused(lambda: sf.Lead.update(first["Id"], {"Title": "x"}), SalesforceMalformedRequest, 400, "CANNOT_UPDATE_CONVERTED_LEAD", "update of a converted lead")
    contact = sf.Contact.get(first["ConvertedContactId"])
    check("converted: its Contact reads back", contact["Id"] == first["ConvertedContactId"], contact.get("Id"))
    users = sf.query("SELECT Id, Email, IsActive FROM User WHERE IsActive = true")
    check("users: active users with e-mails", users["totalSize"] >= 1 and all(u["Email"] for u in users["records"]), users["records"][:2])


def duplicates_and_contacts(desc, sf_desc, sf):
    step("a duplicate rule on e-mail (admin setting): DUPLICATES_DETECTED, single and in collections")
    settings = f"/salesforce/orgs/{sf_desc['org_id']}/settings"
    admin(desc, "PUT", settings, {"duplicate_rule": "block"})
    try:
        err = refused(lambda: sf.Lead.create({"LastName": "Twin", "Company": "SDK Co", "Email": f"ADA{MARK}"}),
                      SalesforceMalformedRequest, 400, "DUPLICATES_DETECTED", "create of an e-mail another lead has")
        check("duplicate: duplicateResult", isinstance(err.get("duplicateResult"), dict), err)
        results = sf.restful("composite/sobjects", method="POST", json={"allOrNone": False, "records": [
            {"attributes": {"type": "Lead"}, "LastName": "Twin", "Company": "SDK Co", "Email": f"ada{MARK}"},
            {"attributes": {"type": "Lead"}, "LastName": "Solo", "Company": "SDK Co", "Email": f"solo{MARK}"}]})
        check("duplicate in collections: refused alone", [r["success"] for r in results] == [False, True]
              and results[0]["errors"][0]["statusCode"] == "DUPLICATES_DETECTED", results)
    finally:
        admin(desc, "PUT", settings, {"duplicate_rule": "off"})
    twin = sf.Lead.create({"LastName": "Twin", "Company": "SDK Co", "Email": f"ada{MARK}"})
    check("rule off: the same e-mail is accepted", twin.get("success") is True, twin)
    sf.Lead.delete(twin["id"])
    sf.Lead.delete(results[1]["id"])

    step("Contact: create, get, update, delete")
    made = sf.Contact.create({"FirstName": "Grace", "LastName": "Sdk", "Email": f"grace{MARK}"})
    check("Contact create: an 003 id", made.get("success") is True and made["id"].startswith("003") and len(made["id"]) == 18, made)
    got = sf.Contact.get(made["id"])
    check("Contact get: fields, no Company", (got["LastName"], got["Email"], "Company" in got) == ("Sdk", f"grace{MARK}", False), got)
    check("Contact update: 204", sf.Contact.update(made["id"], {"Title": "Admiral"}) == 204, None)
    check("Contact delete: 204", sf.Contact.delete(made["id"]) == 204, None)
    refused(lambda: sf.Contact.create({"FirstName": "No"}), SalesforceMalformedRequest, 400, "REQUIRED_FIELD_MISSING", "Contact without LastName")


def lead(i, **extra):
    return {"attributes": {"type": "Lead"}, "LastName": f"Bulk{i:03d}", "Company": "SDK Co", "Email": f"bulk{i:03d}{MARK}", **extra}


def collections(sf):
    step("collections create: restful('composite/sobjects', POST), allOrNone false")
    records = [lead(i) for i in range(200)]
    records[3] = {"attributes": {"type": "Lead"}, "LastName": "NoCompany", "Email": f"broken{MARK}"}
    results = sf.restful("composite/sobjects", method="POST", json={"allOrNone": False, "records": records})
    check("create 200: 200 results in input order", isinstance(results, list) and len(results) == 200, results and len(results))
    ok = [r for i, r in enumerate(results) if i != 3]
    check("create 200: 199 created with ids", all(r["success"] is True and r["errors"] == [] and r["id"].startswith("00Q") for r in ok), ok[:2])
    bad = results[3]
    check("create 200: the 4th failed alone", bad["success"] is False and bad["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
          and bad["errors"][0]["fields"] == ["Company"], bad)
    more = sf.restful("composite/sobjects", method="POST", json={"records": [lead(i) for i in range(200, 200 + PAGED - 199)]})
    check(f"create {PAGED - 199} more (allOrNone omitted)", all(r["success"] for r in more), more[:1])
    ids = [r["id"] for r in ok] + [r["id"] for r in more]
    check(f"{PAGED} bulk leads", len(set(ids)) == PAGED, len(set(ids)))

    step("collections create, allOrNone true with one bad record: all rolled back")
    batch = [lead(i, Email=f"rollback{i}{MARK}") for i in range(3)]
    batch[1]["Email"] = "not-an-email"
    results = sf.restful("composite/sobjects", method="POST", json={"allOrNone": True, "records": batch})
    check("allOrNone: 3 failures", [r["success"] for r in results] == [False, False, False], results)
    codes = [r["errors"][0]["statusCode"] for r in results]
    check("allOrNone: the bad one INVALID_EMAIL_ADDRESS, the others ALL_OR_NONE_OPERATION_ROLLED_BACK",
          codes == ["ALL_OR_NONE_OPERATION_ROLLED_BACK", "INVALID_EMAIL_ADDRESS", "ALL_OR_NONE_OPERATION_ROLLED_BACK"], codes)
    left = sf.query(f"SELECT Id FROM Lead WHERE Email LIKE 'rollback%{MARK}'")
    check("allOrNone: nothing written", left["totalSize"] == 0, left["totalSize"])

    step("collections create of 201 records: EXCEEDED_ID_LIMIT, nothing written")
    refused(lambda: sf.restful("composite/sobjects", method="POST",
                               json={"allOrNone": False, "records": [lead(i, Email=f"toomany{i}{MARK}") for i in range(201)]}),
            SalesforceMalformedRequest, 400, "EXCEEDED_ID_LIMIT", "create 201")
    left = sf.query(f"SELECT Id FROM Lead WHERE Email LIKE 'toomany%{MARK}'")
    check("create 201: nothing written", left["totalSize"] == 0, left["totalSize"])

    step("collections update: restful('composite/sobjects', PATCH)")
    updates = [{"attributes": {"type": "Lead"}, "id": i, "Title": f"T{n}"} for n, i in enumerate(ids[:3])]
    updates.append({"attributes": {"type": "Lead"}, "id": ids[3], "Status": "Nope"})
    results = sf.restful("composite/sobjects", method="PATCH", json={"allOrNone": False, "records": updates})
    check("update: the updated ids in order", [r["id"] for r in results[:3]] == ids[:3], results)
    check("update: 3 updated, the bad Status refused", [r["success"] for r in results] == [True, True, True, False]
          and results[3]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", results)

    step("collections get: restful('composite/sobjects/Lead', ids=, fields=)")
    got = sf.restful("composite/sobjects/Lead", params={"ids": ",".join(ids[:4]), "fields": "Id,Title,Email"})
    check("get: 4 records in id order", [r["Id"] for r in got] == ids[:4], got)
    check("get: the titles written", [r["Title"] for r in got] == ["T0", "T1", "T2", None], [r["Title"] for r in got])
    check("get: only the fields asked", sorted(k for k in got[0] if k != "attributes") == ["Email", "Id", "Title"], sorted(got[0]))
    return ids


def queries(sf, ids):
    step("query with Sforce-Query-Options batchSize=200: pages, query_more by URL")
    soql = f"SELECT Id, Email, LastName FROM Lead WHERE Email LIKE 'bulk%{MARK}' ORDER BY Email"
    headers = {"Sforce-Query-Options": "batchSize=200"}
    first = sf.query(soql, headers=headers)
    check(f"query: totalSize {PAGED}", first["totalSize"] == PAGED, first["totalSize"])
    check("query: not done, fewer records than the total", first["done"] is False and 0 < len(first["records"]) < PAGED, (first["done"], len(first["records"])))
    url = first.get("nextRecordsUrl", "")
    check("query: nextRecordsUrl /services/data/v62.0/query/{locator}-{offset}",
          re.fullmatch(rf"/services/data/v{re.escape(VERSION)}/query/[\w]+-{len(first['records'])}", url) is not None, url)
    rows = list(first["records"])
    page = first
    while not page["done"]:
        page = sf.query_more(page["nextRecordsUrl"], identifier_is_url=True, headers=headers)
        check("query_more: totalSize kept", page["totalSize"] == PAGED, page["totalSize"])
        rows += page["records"]
    emails = [r["Email"] for r in rows]
    check("query + query_more: every row once, ordered by Email",
          len(rows) == PAGED and emails == sorted(emails) and {r["Id"] for r in rows} == set(ids), emails[:3])
    check("query: records carry attributes", rows[0]["attributes"]["type"] == "Lead", rows[0]["attributes"])

    step("query_more by locator (a new query's cursor); query_all (all pages)")
    again = sf.query(soql, headers=headers)
    locator = again["nextRecordsUrl"].rsplit("/", 1)[-1]
    by_locator = sf.query_more(locator, headers=headers)
    check("query_more(locator): the second page", [r["Id"] for r in by_locator["records"]] == [r["Id"] for r in rows[len(again["records"]):]][:len(by_locator["records"])], locator)
    every = sf.query_all(soql)
    check("query_all: every row", every["totalSize"] == PAGED and [r["Id"] for r in every["records"]] == [r["Id"] for r in rows], every["totalSize"])

    step("queryAll paged: its nextRecordsUrl says query, not queryAll (as Salesforce documents)")
    paged = sf.query(soql, include_deleted=True, headers=headers)
    check("queryAll: not done", paged["done"] is False, paged["done"])
    check("queryAll: nextRecordsUrl under /query/", paged["nextRecordsUrl"].startswith(f"/services/data/v{VERSION}/query/"), paged["nextRecordsUrl"])
    rest = sf.query_more(paged["nextRecordsUrl"], identifier_is_url=True, headers=headers)
    check("queryAll: the rest of the rows", len(paged["records"]) + len(rest["records"]) == PAGED, len(rest["records"]))

    step("query filters: IN, AND/OR, !=, date-time literal, LIMIT")
    some = sf.query(f"SELECT Id FROM Lead WHERE Id IN ('{ids[0]}', '{ids[1]}') OR (Email = 'bulk010{MARK}' AND LastName != 'x')")
    check("IN / OR / AND / !=: 3 rows", some["totalSize"] == 3, some["totalSize"])
    recent = sf.query(f"SELECT Id FROM Lead WHERE SystemModstamp > 2000-01-01T00:00:00Z AND Email LIKE 'bulk%{MARK}' LIMIT 7")
    check("date-time literal + LIMIT 7", recent["totalSize"] == 7 and len(recent["records"]) == 7, recent["totalSize"])

    step("query errors: MALFORMED_QUERY, INVALID_FIELD")
    refused(lambda: sf.query("SELEC Id FROM Lead"), SalesforceMalformedRequest, 400, "MALFORMED_QUERY", "bad syntax")
    refused(lambda: sf.query("SELECT Id FROM Lead WHERE"), SalesforceMalformedRequest, 400, "MALFORMED_QUERY", "WHERE without a condition")
    refused(lambda: sf.query("SELECT Id, Nope__c FROM Lead"), SalesforceMalformedRequest, 400, "INVALID_FIELD", "unknown field")


def deletions(sf, lead_id, ids):
    step("sObject delete: Lead.delete(id) -> DELETE sobjects/Lead/{id}")
    before = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    check("delete: 204", sf.Lead.delete(lead_id) == 204, None)
    refused(lambda: sf.Lead.get(lead_id), SalesforceResourceNotFound, 404, "ENTITY_IS_DELETED", "get of a deleted lead")

    step("collections delete: restful('composite/sobjects', DELETE, ids=)")
    results = sf.restful("composite/sobjects", params={"ids": ",".join(ids[:2]), "allOrNone": "false"}, method="DELETE")
    check("delete 2: both deleted, ids in order", [(r["id"], r["success"]) for r in results] == [(ids[0], True), (ids[1], True)], results)
    gone = sf.restful("composite/sobjects/Lead", params={"ids": ",".join(ids[:3]), "fields": "Id"})
    check("collections get after delete: null for the deleted", gone[0] is None and gone[1] is None and gone[2]["Id"] == ids[2], gone)

    step("queryAll sees the deleted rows, query does not")
    wanted = f"('{lead_id}', '{ids[0]}', '{ids[1]}')"
    live = sf.query(f"SELECT Id FROM Lead WHERE Id IN {wanted}")
    check("query: none", live["totalSize"] == 0, live["totalSize"])
    everything = sf.query(f"SELECT Id, IsDeleted FROM Lead WHERE Id IN {wanted}", include_deleted=True)
    check("queryAll: the three, IsDeleted", everything["totalSize"] == 3 and all(r["IsDeleted"] is True for r in everything["records"]), everything["records"])
    gone = sf.query_all(f"SELECT Id FROM Lead WHERE IsDeleted = true AND Id IN {wanted}", include_deleted=True)
    check("query_all(include_deleted): IsDeleted = true filter", gone["totalSize"] == 3, gone["totalSize"])

    step("getDeleted / getUpdated: Lead.deleted(), Lead.updated()")
    end = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=1)
    deleted = sf.Lead.deleted(before, end)
    got = {r["id"] for r in deleted.get("deletedRecords", [])}
    check("deleted: the three", {lead_id, ids[0], ids[1]} <= got, sorted(got))
    check("deleted: deletedDate", all(DATETIME.match(r["deletedDate"]) for r in deleted["deletedRecords"]), deleted["deletedRecords"][:1])
    check("deleted: earliestDateAvailable, latestDateCovered", DATETIME.match(deleted.get("earliestDateAvailable") or "") and DATETIME.match(deleted.get("latestDateCovered") or ""), deleted)
    updated = sf.Lead.updated(before, end)
    check("updated: the live bulk leads", set(ids[2:]) <= set(updated.get("ids", [])), len(updated.get("ids", [])))
    check("updated: latestDateCovered", DATETIME.match(updated.get("latestDateCovered") or "") is not None, updated.get("latestDateCovered"))


def expiry(desc, sf_desc, sf, port, cert):
    step("session expired mid-way: the SDK raises SalesforceExpiredSession")
    admin(desc, "POST", f"/salesforce/orgs/{sf_desc['org_id']}/sessions/expire")
    err = refused(lambda: sf.query("SELECT Id FROM Lead LIMIT 1"), SalesforceExpiredSession, 401, "INVALID_SESSION_ID", "query on an expired session")
    check("expired: Session expired or invalid", err["message"] == "Session expired or invalid", err["message"])
    fresh = token(sf_desc)
    check("a new token after expiry", fresh.status_code == 200, fresh.text)
    again = connect(fresh.json()["access_token"], port, cert)
    check("the new session queries", again.query("SELECT Id FROM Lead LIMIT 1")["totalSize"] == 1, None)
    return again


def spent(desc, sf_desc, sf):
    step("the daily API limit spent: SalesforceRefusedRequest 403 REQUEST_LIMIT_EXCEEDED")
    used = admin(desc, "GET", f"/salesforce/orgs/{sf_desc['org_id']}/limits")["used"]
    admin(desc, "PUT", f"/salesforce/orgs/{sf_desc['org_id']}/limits", {"daily_api_requests": used})
    err = refused(lambda: sf.query("SELECT Id FROM Lead LIMIT 1"), SalesforceRefusedRequest, 403, "REQUEST_LIMIT_EXCEEDED", "query past the limit")
    check("limit: TotalRequests Limit exceeded.", err["message"] == "TotalRequests Limit exceeded.", err["message"])


def main():
    raw = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SALESFORCE_SANDBOX")
    if not raw:
        raise SystemExit("usage: python salesforce_sdk.py <sandbox description JSON>")
    desc = json.loads(raw)
    sf_desc = desc["salesforce"]
    for key in ("login_url", "instance_url", "client_id", "client_secret", "refresh_token", "org_id"):
        check(f"description has salesforce.{key}", bool(sf_desc.get(key)), sf_desc.get(key))
    with tempfile.TemporaryDirectory() as tmp:
        body = oauth(sf_desc)
        port, cert = tls_proxy(body["instance_url"], tmp)
        sf = connect(body["access_token"], port, cert)
        resources(sf)
        fields = describe(sf)
        limits(sf)
        lead_id = sobject_rows(sf, fields)
        converted(desc, sf)
        duplicates_and_contacts(desc, sf_desc, sf)
        ids = collections(sf)
        queries(sf, ids)
        deletions(sf, lead_id, ids)
        sf = expiry(desc, sf_desc, sf, port, cert)
        spent(desc, sf_desc, sf)
    print(f"all {step_no} steps ok")


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        print("FAILED", file=sys.stderr)
        sys.exit(1)
