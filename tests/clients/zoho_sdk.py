"""Zoho's official Python SDK (zohocrmsdk8_0), unmodified, against the sandbox.

Only the environment points elsewhere: `DataCenter.Environment(api, token_url,
api)`. The SDK exchanges the grant code, calls `users?type=CurrentUser` and `org`
after every grant and refresh (to name its token "email:zgid"), then this script runs
the basic operations a sync needs and checks the values that come back.

Input (environment): ZOHO_API_DOMAIN ({base}/zoho/api), ZOHO_ACCOUNTS_URL
({base}/zoho/accounts), ZOHO_CLIENT_ID, ZOHO_CLIENT_SECRET, ZOHO_GRANT_CODE,
ZOHO_USER_EMAIL (the token's user) and ZOHO_ORG_ID (the org's zgid). The org must hold
no Leads at start. Prints one line per check; exits 1 at the first failure.
"""

import os
import sys
import tempfile
import time
import traceback

from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.api.authenticator.store.file_store import FileStore
from zohocrmsdk.src.com.zoho.crm.api import HeaderMap, Initializer, ParameterMap
from zohocrmsdk.src.com.zoho.crm.api.coql import BodyWrapper as CoqlBody
from zohocrmsdk.src.com.zoho.crm.api.coql import CoqlOperations
from zohocrmsdk.src.com.zoho.crm.api.coql import ResponseWrapper as CoqlResponse
from zohocrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter
from zohocrmsdk.src.com.zoho.crm.api.fields import FieldsOperations, GetFieldsParam
from zohocrmsdk.src.com.zoho.crm.api.fields import ResponseWrapper as FieldsResponse
from zohocrmsdk.src.com.zoho.crm.api.org import OrgOperations
from zohocrmsdk.src.com.zoho.crm.api.org import ResponseWrapper as OrgResponse
from zohocrmsdk.src.com.zoho.crm.api.record import (
    ActionWrapper,
    BodyWrapper,
    DeleteRecordsParam,
    DeletedRecordsWrapper,
    Field,
    GetDeletedRecordsParam,
    GetRecordsParam,
    Record,
    RecordOperations,
    ResponseWrapper,
    SearchRecordsParam,
    SuccessResponse,
)
from zohocrmsdk.src.com.zoho.crm.api.sdk_config import SDKConfig
from zohocrmsdk.src.com.zoho.crm.api.users import GetUsersParam, UsersOperations
from zohocrmsdk.src.com.zoho.crm.api.users import ResponseWrapper as UsersResponse

MARK = "@sdk.example"
COUNT = 12


def check(what, ok, got=None):
    if not ok:
        raise AssertionError(f"{what}: got {got!r}")
    print(f"ok   {what}")


def env(name):
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"zoho_sdk.py: {name} is not set")
    return value


def body_of(response, cls, what):
    """The parsed body when it is `cls`, else a failure naming what came back."""
    obj = response.get_object() if response is not None else None
    if not isinstance(obj, cls):
        detail = obj
        if obj is not None and hasattr(obj, "get_code"):
            detail = (obj.get_code().get_value(), obj.get_message(), obj.get_details())
        status = response.get_status_code() if response is not None else None
        raise AssertionError(f"{what}: HTTP {status}, expected {cls.__name__}, got {detail!r}")
    return obj


def action_results(response, what, status=None):
    wrapper = body_of(response, ActionWrapper, what)
    if status is not None:
        check(f"{what}: HTTP {status}", response.get_status_code() == status, response.get_status_code())
    results = wrapper.get_data()
    for r in results:
        code = r.get_code().get_value()
        check(f"{what}: {code} {r.get_details().get('id')}", isinstance(r, SuccessResponse) and code == "SUCCESS", code)
    return results


def initialize(tmp):
    api = env("ZOHO_API_DOMAIN")
    token_url = env("ZOHO_ACCOUNTS_URL") + "/oauth/v2/token"
    environment = DataCenter.Environment(api, token_url, api)
    token = OAuthToken(
        client_id=env("ZOHO_CLIENT_ID"),
        client_secret=env("ZOHO_CLIENT_SECRET"),
        grant_token=env("ZOHO_GRANT_CODE"),
    )
    store = FileStore(os.path.join(tmp, "tokens.csv"))
    config = SDKConfig(auto_refresh_fields=False, pick_list_validation=False, read_timeout=30, connect_timeout=10)
    Initializer.initialize(environment=environment, token=token, store=store, sdk_config=config, resource_path=tmp)
    return store


def check_token(store, what):
    """The SDK names a token "email:zgid" from CurrentUser and org: both answered."""
    want = f"{env('ZOHO_USER_EMAIL')}:{env('ZOHO_ORG_ID')}"
    saved = store.get_tokens()
    check(f"{what}: one token saved", len(saved) == 1, len(saved))
    token = saved[0]
    signature = token.get_user_signature()
    check(f"{what}: the token names its user and org ({want})", signature is not None and signature.get_name() == want, signature and signature.get_name())
    check(f"{what}: the token has an access token", bool(token.get_access_token()), token.get_access_token())
    check(f"{what}: and a refresh token", bool(token.get_refresh_token()), token.get_refresh_token())
    return token


def refresh(store):
    """Stores the access token as expired, so that the SDK's next call refreshes it
    (the SDK reads its token back from the store before each call)."""
    saved = check_token(store, "before refresh")
    before = saved.get_access_token()
    saved.set_expires_in(str(int(time.time() * 1000)))
    store.save_token(saved)
    current_user()
    after = check_token(store, "refresh")
    check("refresh: a new access token", after.get_access_token() != before, after.get_access_token())


def fields():
    params = ParameterMap()
    params.add(GetFieldsParam.module, "Leads")
    wrapper = body_of(FieldsOperations().get_fields(params), FieldsResponse, "fields")
    by_name = {f.get_api_name(): f for f in wrapper.get_fields()}
    for name, data_type in [("Last_Name", "text"), ("Email", "email"), ("Company", "text"), ("score", "integer")]:
        f = by_name.get(name)
        check(f"fields: {name} is {data_type}", f is not None and f.get_data_type() == data_type, f and f.get_data_type())


def current_user():
    params = ParameterMap()
    params.add(GetUsersParam.type, "CurrentUser")
    users = body_of(UsersOperations().get_users(params), UsersResponse, "users CurrentUser").get_users()
    emails = [u.get_email() for u in users]
    check("users CurrentUser: the token's user alone", emails == [env("ZOHO_USER_EMAIL")], emails)
    return users


def organization():
    orgs = body_of(OrgOperations().get_organization(), OrgResponse, "org").get_org()
    check("org: one organisation", len(orgs) == 1, len(orgs))
    org = orgs[0]
    check("org: zgid is the org id", org.get_zgid() == env("ZOHO_ORG_ID"), org.get_zgid())
    check("org: primary e-mail is the admin's", org.get_primary_email() == env("ZOHO_USER_EMAIL"), org.get_primary_email())
    check("org: company name", org.get_company_name() == "Sandbox Org", org.get_company_name())
    check("org: currency", (org.get_currency(), org.get_iso_code()) == ("US Dollar", "USD"), org.get_currency())


def lead(i):
    r = Record()
    r.add_field_value(Field.Leads.last_name(), f"Sdk{i:02d}")
    r.add_field_value(Field.Leads.email(), f"lead{i:02d}{MARK}")
    r.add_field_value(Field.Leads.company(), "SDK Co")
    return r


def insert():
    body = BodyWrapper()
    body.set_data([lead(i) for i in range(COUNT)])
    body.set_trigger([])
    results = action_results(RecordOperations("Leads").create_records(body, HeaderMap()), "insert", 201)
    ids = [int(r.get_details()["id"]) for r in results]
    check(f"insert: {COUNT} ids", len(set(ids)) == COUNT, ids)
    return ids


def get_page(page=None, token=None):
    params = ParameterMap()
    params.add(GetRecordsParam.fields, "Last_Name,Email")
    params.add(GetRecordsParam.per_page, 5)
    params.add(GetRecordsParam.sort_by, "id")
    params.add(GetRecordsParam.sort_order, "asc")
    if page is not None:
        params.add(GetRecordsParam.page, page)
    if token is not None:
        params.add(GetRecordsParam.page_token, token)
    wrapper = body_of(RecordOperations("Leads").get_records(params, HeaderMap()), ResponseWrapper, "get records")
    return [r.get_id() for r in wrapper.get_data()], wrapper.get_info()


def paging(ids):
    seen, sizes = [], []
    for page in (1, 2, 3):
        got, info = get_page(page=page)
        seen += got
        sizes.append((len(got), info.get_more_records()))
    check("paging by page: 5, 5 and 2 records", sizes == [(5, True), (5, True), (2, False)], sizes)
    check("paging by page: every inserted lead once, in id order", seen == sorted(ids), seen)
    seen, token, pages = [], None, 0
    while True:
        got, info = get_page(token=token)
        seen += got
        pages += 1
        token = info.get_next_page_token()
        if token is None:
            break
        check(f"page token {pages}: more records", info.get_more_records() is True, info.get_more_records())
    check("paging by page token: 3 pages", pages == 3, pages)
    check("paging by page token: every inserted lead once, in id order", seen == sorted(ids), seen)


def update(ids):
    r = Record()
    r.set_id(ids[0])
    r.add_field_value(Field.Leads.last_name(), "Updated")
    body = BodyWrapper()
    body.set_data([r])
    action_results(RecordOperations("Leads").update_records(body, HeaderMap()), "update", 200)
    got = body_of(RecordOperations("Leads").get_record(ids[0], ParameterMap(), HeaderMap()), ResponseWrapper, "get record")
    name = got.get_data()[0].get_key_value("Last_Name")
    check("update: the record reads back changed", name == "Updated", name)


def upsert(ids):
    existing = Record()
    existing.add_field_value(Field.Leads.last_name(), "Upserted")
    existing.add_field_value(Field.Leads.email(), f"LEAD01{MARK}")
    fresh = lead(COUNT)
    body = BodyWrapper()
    body.set_data([existing, fresh])
    body.set_duplicate_check_fields(["Email"])
    results = action_results(RecordOperations("Leads").upsert_records(body, HeaderMap()), "upsert")
    actions = [r.get_action().get_value() for r in results]
    check("upsert: update then insert", actions == ["update", "insert"], actions)
    check("upsert: the e-mail matched lead 01", int(results[0].get_details()["id"]) == ids[1], results[0].get_details())
    check("upsert: matched on Email", results[0].get_duplicate_field() == "Email", results[0].get_duplicate_field())
    return int(results[1].get_details()["id"])


def search(ids):
    params = ParameterMap()
    params.add(SearchRecordsParam.criteria, "((Last_Name:equals:Upserted)and(Company:equals:SDK Co))")
    found = body_of(RecordOperations("Leads").search_records(params, HeaderMap()), ResponseWrapper, "search criteria")
    check("search by criteria: lead 01", [r.get_id() for r in found.get_data()] == [ids[1]], [r.get_id() for r in found.get_data()])
    params = ParameterMap()
    params.add(SearchRecordsParam.email, f"lead05{MARK}")
    found = body_of(RecordOperations("Leads").search_records(params, HeaderMap()), ResponseWrapper, "search email")
    check("search by e-mail: lead 05", [r.get_id() for r in found.get_data()] == [ids[5]], [r.get_id() for r in found.get_data()])


def coql(ids):
    body = CoqlBody()
    body.set_select_query(f"select Last_Name, Email from Leads where Email like '%{MARK}' order by Email desc limit 2, 3")
    wrapper = body_of(CoqlOperations().get_records(body), CoqlResponse, "coql")
    emails = [r.get_key_value("Email") for r in wrapper.get_data()]
    check("coql: ordered by e-mail, descending, from the third", emails == [f"lead{i:02d}{MARK}" for i in (10, 9, 8)], emails)
    check("coql: ids come back", [r.get_id() for r in wrapper.get_data()] == [ids[10], ids[9], ids[8]], [r.get_id() for r in wrapper.get_data()])
    info = wrapper.get_info()
    check("coql: info says 3 and more", (info.get_count(), info.get_more_records()) == (3, True), (info.get_count(), info.get_more_records()))


def delete(ids, extra):
    params = ParameterMap()
    params.add(DeleteRecordsParam.ids, f"{ids[2]},{ids[3]}")
    action_results(RecordOperations("Leads").delete_records(params, HeaderMap()), "delete two", 200)
    action_results(RecordOperations("Leads").delete_record(extra, ParameterMap(), HeaderMap()), "delete one", 200)
    params = ParameterMap()
    params.add(GetDeletedRecordsParam.type, "all")
    rows = body_of(RecordOperations("Leads").get_deleted_records(params, HeaderMap()), DeletedRecordsWrapper, "deleted records").get_data()
    check("deleted records: the three deleted", sorted(r.get_id() for r in rows) == sorted([ids[2], ids[3], extra]), [r.get_id() for r in rows])
    me = current_user()[0]
    for r in rows:
        check(f"deleted {r.get_id()}: type recycle", r.get_type() == "recycle", r.get_type())
        check(f"deleted {r.get_id()}: created_by is the token's user", r.get_created_by() is not None and r.get_created_by().get_id() == me.get_id(), r.get_created_by())
        check(f"deleted {r.get_id()}: deleted_by is the token's user", r.get_deleted_by() is not None and r.get_deleted_by().get_name() == me.get_full_name(), r.get_deleted_by())
        check(f"deleted {r.get_id()}: deleted_time", r.get_deleted_time() is not None, r.get_deleted_time())


def main():
    with tempfile.TemporaryDirectory() as tmp:
        store = initialize(tmp)
        check_token(store, "grant")
        fields()
        current_user()
        organization()
        refresh(store)
        ids = insert()
        paging(ids)
        update(ids)
        extra = upsert(ids)
        search(ids)
        coql(ids)
        delete(ids, extra)
    print("all checks passed")


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        print("FAILED", file=sys.stderr)
        sys.exit(1)
