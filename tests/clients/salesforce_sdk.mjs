// Runs jsforce (npm `jsforce`, unmodified: only `loginUrl` and `instanceUrl` point at the
// sandbox) through the calls Salesforce users script with - the OAuth refresh-token
// flow, versions, identity, describe, limits, SOQL query / queryAll / queryMore, sObject
// CRUD, sObject Collections, getUpdated / getDeleted, a session that expires mid-way
// and is refreshed by jsforce on its own, and the JWT bearer flow - and checks every
// reply. Exits non-zero on the first mismatch.
//
// Usage: node salesforce_sdk.mjs [<description>]
// where <description> is the sandbox's JSON description (as printed by `crmsync sandbox`:
// it needs `admin_url` and the `salesforce` object), else the environment's
// SALESFORCE_SANDBOX.

import assert from "node:assert/strict";
import crypto from "node:crypto";
import jsforce from "jsforce";

const raw = process.argv[2] ?? process.env.SALESFORCE_SANDBOX;
if (!raw) {
  console.error("usage: node salesforce_sdk.mjs <sandbox description JSON>");
  process.exit(2);
}
const described = JSON.parse(raw);
const sf = described.salesforce;
const adminUrl = described.admin_url;
assert.ok(adminUrl, "the description has admin_url");
for (const key of [
  "login_url",
  "instance_url",
  "client_id",
  "client_secret",
  "refresh_token",
  "username",
  "org_id",
]) {
  assert.ok(sf?.[key], `the description has salesforce.${key}`);
}

const VERSION = "62.0";
const MARK = "@sdkjs.example";
const PAGED = 250;
const DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000$/;

let stepNo = 0;
let checks = 0;
function step(title) {
  stepNo += 1;
  console.log(`== ${stepNo}. ${title}`);
}
function ok(what) {
  checks += 1;
  console.log(`ok   ${what}`);
}

/** The error a jsforce call must throw: a Salesforce error with `code`. */
async function refused(promise, code, what) {
  const error = await promise.then(
    (reply) => assert.fail(`${what}: expected ${code}, got a reply ${JSON.stringify(reply)}`),
    (e) => e,
  );
  assert.equal(error?.errorCode, code, `${what}: ${error?.stack ?? error}`);
  assert.equal(error.name, code, `${what}: the error's name`);
  assert.equal(typeof error.message, "string", `${what}: message`);
  assert.ok(error.message.length > 0, `${what}: a message`);
  assert.equal(error.data?.errorCode, code, `${what}: data is Salesforce's error`);
  ok(`${what}: ${code} (${error.message})`);
  return error;
}

/** An OAuth error jsforce throws from the token endpoint (`name` = `error`). */
async function oauthRefused(promise, code, what) {
  const error = await promise.then(
    (reply) => assert.fail(`${what}: expected ${code}, got ${JSON.stringify(reply)}`),
    (e) => e,
  );
  assert.equal(error?.name, code, `${what}: ${error?.stack ?? error}`);
  assert.ok(error.message, `${what}: error_description`);
  ok(`${what}: ${code} (${error.message})`);
}

async function admin(method, path, body) {
  const reply = await fetch(`${adminUrl}${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await reply.text();
  assert.ok(reply.ok, `admin ${method} ${path}: HTTP ${reply.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

function oauth2(overrides = {}) {
  return new jsforce.OAuth2({
    loginUrl: sf.login_url,
    clientId: sf.client_id,
    clientSecret: sf.client_secret,
    ...overrides,
  });
}

function lead(i, extra = {}) {
  return { LastName: `Bulk${String(i).padStart(3, "0")}`, Company: "SDK Co", Email: `bulk${String(i).padStart(3, "0")}${MARK}`, ...extra };
}

async function tokens() {
  step("OAuth2 refresh-token flow at the custom loginUrl: oauth2.refreshToken()");
  const res = await oauth2().refreshToken(sf.refresh_token);
  assert.ok(res.access_token, "access_token");
  assert.equal(res.instance_url, sf.instance_url, "instance_url");
  assert.equal(res.token_type, "Bearer");
  assert.equal(res.refresh_token, undefined, "no new refresh token");
  assert.match(res.id, new RegExp(`^${sf.login_url.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/id/${sf.org_id}/005\\w{15}$`), "id URL");
  assert.match(res.issued_at, /^\d{13}$/, "issued_at in ms");
  const signature = crypto.createHmac("sha256", sf.client_secret).update(res.id + res.issued_at).digest("base64");
  assert.equal(res.signature, signature, "signature = HMAC-SHA256(secret, id + issued_at)");
  ok("refresh grant: access_token, instance_url, id, token_type, issued_at, signature");

  step("OAuth2 errors: bad refresh token, bad secret, bad client id");
  await oauthRefused(oauth2().refreshToken("5Aep861bogus"), "invalid_grant", "bad refresh token");
  await oauthRefused(oauth2({ clientSecret: "wrong" }).refreshToken(sf.refresh_token), "invalid_client", "bad client secret");
  await oauthRefused(oauth2({ clientId: "3MVG9bogus" }).refreshToken(sf.refresh_token), "invalid_client_id", "bad client id");
  return res;
}

function connect(accessToken, refreshToken = sf.refresh_token) {
  return new jsforce.Connection({
    oauth2: { loginUrl: sf.login_url, clientId: sf.client_id, clientSecret: sf.client_secret },
    instanceUrl: sf.instance_url,
    accessToken,
    refreshToken,
    version: VERSION,
  });
}

async function discovery(conn) {
  step("versions and resources: request('/services/data/'), request('/')");
  const versions = await conn.request("/services/data/");
  assert.ok(Array.isArray(versions), "versions: an array");
  const v = versions.find((x) => x.version === VERSION);
  assert.equal(v?.url, `/services/data/v${VERSION}`, JSON.stringify(versions));
  assert.ok(v.label, "versions: a label");
  ok(`versions: ${versions.map((x) => x.version).join(", ")}`);
  const resources = await conn.request("/");
  for (const key of ["sobjects", "query", "queryAll", "limits", "composite"]) {
    assert.equal(resources[key], `/services/data/v${VERSION}/${key}`, `resources.${key}`);
  }
  ok("resources: sobjects, query, queryAll, limits, composite");
  assert.ok(conn.limitInfo.apiUsage?.used > 0, `limitInfo from Sforce-Limit-Info: ${JSON.stringify(conn.limitInfo)}`);
  ok(`limitInfo: ${conn.limitInfo.apiUsage.used}/${conn.limitInfo.apiUsage.limit}`);

  step("identity(): GET {version}, then the id URL ?format=json");
  const me = await conn.identity();
  assert.equal(me.organization_id, sf.org_id, "organization_id");
  assert.match(me.user_id, /^005\w{15}$/, "user_id");
  assert.equal(me.username, sf.username, "username");
  assert.ok(me.id.endsWith(`/id/${sf.org_id}/${me.user_id}`), `id: ${me.id}`);
  ok(`identity: ${me.username}`);

  step("describeGlobal(), describe('Lead'), describe('Contact')");
  const global = await conn.describeGlobal();
  const names = new Set(global.sobjects.map((s) => s.name));
  for (const n of ["Lead", "Contact", "User"]) assert.ok(names.has(n), `describeGlobal lists ${n}`);
  ok(`describeGlobal: ${global.sobjects.length} sObjects`);
  const leadDescribe = await conn.sobject("Lead").describe();
  assert.equal(leadDescribe.name, "Lead");
  const fields = new Map(leadDescribe.fields.map((f) => [f.name, f]));
  for (const [name, type] of [
    ["Id", "id"],
    ["LastName", "string"],
    ["Company", "string"],
    ["Email", "email"],
    ["Status", "picklist"],
    ["LeadSource", "picklist"],
    ["HasOptedOutOfEmail", "boolean"],
    ["OwnerId", "reference"],
    ["IsConverted", "boolean"],
    ["SystemModstamp", "datetime"],
    ["Plezi_URL__c", "url"],
    ["Sync_To_Plezi__c", "boolean"],
  ]) {
    assert.equal(fields.get(name)?.type, type, `describe Lead: ${name}`);
  }
  assert.equal(fields.get("Company").nillable, false);
  assert.equal(fields.get("Company").createable, true);
  assert.equal(fields.get("IsConverted").updateable, false);
  assert.equal(fields.get("Plezi_URL__c").custom, true);
  assert.equal(fields.get("Status").restrictedPicklist, true);
  assert.ok(
    fields.get("Status").picklistValues.some((p) => p.value === "Open - Not Contacted" && p.defaultValue === true),
    "Status default Open - Not Contacted",
  );
  ok(`describe Lead: ${leadDescribe.fields.length} fields, types and flags`);
  const contactDescribe = await conn.describe("Contact");
  const contactFields = new Set(contactDescribe.fields.map((f) => f.name));
  assert.ok(contactFields.has("AccountId") && !contactFields.has("Company"), "Contact: AccountId, no Company");
  ok("describe Contact");

  step("limits()");
  const limits = await conn.limits();
  assert.ok(Number.isInteger(limits.DailyApiRequests?.Max), JSON.stringify(limits.DailyApiRequests));
  assert.ok(limits.DailyApiRequests.Remaining < limits.DailyApiRequests.Max);
  assert.equal(conn.limitInfo.apiUsage.limit, limits.DailyApiRequests.Max, "Sforce-Limit-Info agrees");
  ok(`limits: DailyApiRequests ${limits.DailyApiRequests.Remaining}/${limits.DailyApiRequests.Max}`);
  return fields;
}

async function rows(conn, fields) {
  const leads = conn.sobject("Lead");
  step("sObject create / retrieve / update: sobject('Lead').create({...})");
  const source = fields.get("LeadSource").picklistValues[0].value;
  const made = await leads.create({ FirstName: "Ada", LastName: "Sdk", Company: "SDK Co", Email: `ada${MARK}`, LeadSource: source });
  assert.equal(made.success, true);
  assert.deepEqual(made.errors, []);
  assert.match(made.id, /^00Q\w{15}$/);
  ok(`create: ${made.id}`);
  const got = await leads.retrieve(made.id);
  assert.deepEqual(got.attributes, { type: "Lead", url: `/services/data/v${VERSION}/sobjects/Lead/${made.id}` });
  assert.equal(got.Email, `ada${MARK}`);
  assert.equal(got.LeadSource, source);
  assert.equal(got.Status, "Open - Not Contacted");
  assert.equal(got.HasOptedOutOfEmail, false);
  assert.match(got.SystemModstamp, DATETIME);
  ok("retrieve: attributes, fields, defaults, datetime format");
  const some = await leads.retrieve(made.id, { fields: ["Id", "Email"] });
  assert.deepEqual(Object.keys(some).filter((k) => k !== "attributes").sort(), ["Email", "Id"]);
  ok("retrieve with fields: ?fields=Id,Email");
  const upd = await leads.update({ Id: made.id, Title: "CEO", HasOptedOutOfEmail: true });
  assert.deepEqual(upd, { id: made.id, success: true, errors: [] });
  const after = await leads.retrieve(made.id, { fields: ["Title", "HasOptedOutOfEmail"] });
  assert.equal(after.Title, "CEO");
  assert.equal(after.HasOptedOutOfEmail, true);
  ok("update: 204, read back");

  step("sObject errors jsforce throws");
  const missing = await refused(leads.create({ LastName: "NoCompany" }), "REQUIRED_FIELD_MISSING", "create without Company");
  assert.deepEqual(missing.data.fields, ["Company"]);
  assert.equal(missing.message, "Required fields are missing: [Company]");
  const email = await refused(leads.create({ LastName: "X", Company: "X", Email: "nope" }), "INVALID_EMAIL_ADDRESS", "create with a bad e-mail");
  assert.deepEqual(email.data.fields, ["Email"]);
  await refused(leads.update({ Id: made.id, Status: "Nope" }), "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "update with a bad Status");
  await refused(leads.retrieve("00Q000000000000AAA"), "NOT_FOUND", "retrieve of an unknown id");
  const toConvert = await leads.create({ LastName: "Convert", Company: "SDK Co", Email: `convert${MARK}` });
  const conversion = await admin("POST", `/salesforce/leads/${toConvert.id}/convert`);
  const [convertedLead] = await leads.find({ IsConverted: true, Id: toConvert.id }, ["Id", "ConvertedContactId"], { limit: 1 });
  assert.equal(convertedLead?.ConvertedContactId, conversion.contact_id, "the lead a rep converted (admin API)");
  await refused(leads.update({ Id: convertedLead.Id, Title: "x" }), "CANNOT_UPDATE_CONVERTED_LEAD", "update of a converted lead");
  return made.id;
}

async function duplicates(conn) {
  step("a duplicate rule on e-mail (admin setting): DUPLICATES_DETECTED");
  const settings = `/salesforce/orgs/${sf.org_id}/settings`;
  await admin("PUT", settings, { duplicate_rule: "block" });
  try {
    const error = await refused(
      conn.sobject("Lead").create({ LastName: "Twin", Company: "SDK Co", Email: `ADA${MARK}` }),
      "DUPLICATES_DETECTED",
      "create of an e-mail another lead has",
    );
    assert.equal(typeof error.data.duplicateResult, "object", "duplicateResult");
  } finally {
    await admin("PUT", settings, { duplicate_rule: "off" });
  }
}

async function collections(conn) {
  const leads = conn.sobject("Lead");
  step(`collections create: create([${PAGED}], {allowRecursive}) -> POST composite/sobjects x2`);
  const created = await leads.create(
    Array.from({ length: PAGED }, (_, i) => lead(i)),
    { allowRecursive: true },
  );
  assert.equal(created.length, PAGED);
  assert.ok(created.every((r) => r.success === true && /^00Q\w{15}$/.test(r.id) && r.errors.length === 0), JSON.stringify(created.find((r) => !r.success)));
  const ids = created.map((r) => r.id);
  assert.equal(new Set(ids).size, PAGED);
  ok(`${PAGED} created, in order`);

  step("collections create, allOrNone false and true, with one bad record");
  const mixed = await leads.create([lead(900, { Email: `mixed0${MARK}` }), { LastName: "NoCompany", Email: `mixed1${MARK}` }]);
  assert.equal(mixed[0].success, true);
  assert.equal(mixed[1].success, false);
  assert.equal(mixed[1].errors[0].statusCode, "REQUIRED_FIELD_MISSING");
  assert.deepEqual(mixed[1].errors[0].fields, ["Company"]);
  ok("allOrNone false: one created, one REQUIRED_FIELD_MISSING");
  const rolled = await leads.create(
    [lead(901, { Email: `rolled0${MARK}` }), lead(902, { Email: "bad-email" }), lead(903, { Email: `rolled2${MARK}` })],
    { allOrNone: true },
  );
  assert.deepEqual(rolled.map((r) => r.success), [false, false, false]);
  assert.deepEqual(
    rolled.map((r) => r.errors[0].statusCode),
    ["ALL_OR_NONE_OPERATION_ROLLED_BACK", "INVALID_EMAIL_ADDRESS", "ALL_OR_NONE_OPERATION_ROLLED_BACK"],
  );
  const none = await conn.query(`SELECT Id FROM Lead WHERE Email LIKE 'rolled%${MARK}'`);
  assert.equal(none.totalSize, 0, "allOrNone: nothing written");
  ok("allOrNone true: all rolled back, nothing written");
  await refused(
    leads.create(Array.from({ length: 201 }, (_, i) => lead(i, { Email: `toomany${i}${MARK}` }))),
    "EXCEEDED_ID_LIMIT",
    "create of 201 records",
  );
  const stillNone = await conn.query(`SELECT Id FROM Lead WHERE Email LIKE 'toomany%${MARK}'`);
  assert.equal(stillNone.totalSize, 0, "201: nothing written");

  step("collections update: update([...]) -> PATCH composite/sobjects ({id, attributes})");
  const updated = await leads.update([
    { Id: ids[0], Title: "T0" },
    { Id: ids[1], Title: "T1" },
    { Id: ids[2], Status: "Nope" },
  ]);
  assert.deepEqual(updated.map((r) => r.success), [true, true, false]);
  assert.deepEqual([updated[0].id, updated[1].id], [ids[0], ids[1]]);
  assert.equal(updated[2].errors[0].statusCode, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST");
  ok("update: two updated, one refused, ids in order");

  step("collections retrieve: retrieve([ids]) -> POST composite/sobjects/Lead {ids, fields}");
  const back = await leads.retrieve(ids.slice(0, 3), { fields: ["Id", "Title"] });
  assert.deepEqual(back.map((r) => [r.Id, r.Title]), [[ids[0], "T0"], [ids[1], "T1"], [ids[2], null]]);
  ok("retrieve with fields");
  const full = await leads.retrieve(ids.slice(0, 2));
  assert.equal(full[0].Email, `bulk000${MARK}`);
  assert.equal(full[0].Sync_To_Plezi__c, false);
  ok("retrieve without fields (every field of the describe)");
  return ids;
}

async function queries(conn, ids) {
  step("query with Sforce-Query-Options batchSize=200, then queryMore");
  const soql = `SELECT Id, Email FROM Lead WHERE Email LIKE 'bulk%${MARK}' ORDER BY Email`;
  const headers = { "Sforce-Query-Options": "batchSize=200" };
  const first = await conn.query(soql, { headers });
  assert.equal(first.totalSize, PAGED);
  assert.equal(first.done, false, "first page not done");
  assert.ok(first.records.length > 0 && first.records.length < PAGED, `first page: ${first.records.length}`);
  assert.match(first.nextRecordsUrl, new RegExp(`/services/data/v${VERSION}/query/\\w+-${first.records.length}$`));
  ok(`first page: ${first.records.length} of ${first.totalSize}`);
  const seen = [...first.records];
  let page = first;
  while (!page.done) {
    page = await conn.queryMore(page.nextRecordsUrl, { headers });
    seen.push(...page.records);
  }
  const emails = seen.map((r) => r.Email);
  assert.equal(seen.length, PAGED);
  assert.deepEqual(emails, [...emails].sort());
  assert.deepEqual(new Set(seen.map((r) => r.Id)), new Set(ids));
  ok("queryMore: every row once, in order");

  step("query autoFetch: run({autoFetch, maxFetch}) over every page");
  let fetches = 0;
  const q = conn.query(soql, { headers, autoFetch: true, maxFetch: 10000 });
  q.on("fetch", () => (fetches += 1));
  const all = await q;
  assert.equal(all.records.length, PAGED);
  assert.ok(fetches >= 2, `fetched in ${fetches} pages`);
  assert.deepEqual(all.records.map((r) => r.Id), seen.map((r) => r.Id));
  ok(`autoFetch: ${PAGED} rows in ${fetches} pages`);

  step("sobject().find(): conditions, sort, limit; find with '*' (describe-expanded SELECT)");
  const found = await conn
    .sobject("Lead")
    .find({ Email: { $like: `bulk%${MARK}` }, LastName: { $in: ["Bulk001", "Bulk002", "Bulk003"] } }, ["Id", "Email"], {
      sort: "-Email",
      limit: 2,
    });
  assert.deepEqual(found.map((r) => r.Email), [`bulk003${MARK}`, `bulk002${MARK}`]);
  ok("find with $like, $in, sort -Email, limit 2");
  const star = await conn.sobject("Lead").findOne({ Email: `bulk004${MARK}` }, "*");
  assert.equal(star.Id, ids[4]);
  assert.equal(star.Company, "SDK Co");
  assert.equal(star.IsConverted, false);
  ok(`findOne with '*': ${Object.keys(star).length - 1} fields`);

  step("query errors: MALFORMED_QUERY, INVALID_FIELD");
  await refused(conn.query("SELEC Id FROM Lead"), "MALFORMED_QUERY", "bad syntax");
  await refused(conn.query("SELECT Id, Nope__c FROM Lead"), "INVALID_FIELD", "unknown field");
}

async function deletions(conn, singleId, ids) {
  const leads = conn.sobject("Lead");
  step("destroy(id) and destroy([ids]) -> DELETE sobjects/Lead/{id}, composite/sobjects?ids=");
  const start = new Date(Date.now() - 10 * 60 * 1000);
  assert.deepEqual(await leads.destroy(singleId), { id: singleId, success: true, errors: [] });
  const many = await leads.destroy(ids.slice(0, 2), { allOrNone: true });
  assert.deepEqual(many.map((r) => [r.id, r.success]), [[ids[0], true], [ids[1], true]]);
  ok("destroyed one, then two (allOrNone)");
  await refused(leads.retrieve(singleId), "ENTITY_IS_DELETED", "retrieve of a deleted lead");

  step("queryAll (scanAll) sees the deleted rows, query does not");
  const wanted = `('${singleId}', '${ids[0]}', '${ids[1]}')`;
  const live = await conn.query(`SELECT Id FROM Lead WHERE Id IN ${wanted}`);
  assert.equal(live.totalSize, 0);
  const withDeleted = await conn.query(`SELECT Id, IsDeleted FROM Lead WHERE Id IN ${wanted}`, { scanAll: true });
  assert.equal(withDeleted.totalSize, 3);
  assert.ok(withDeleted.records.every((r) => r.IsDeleted === true));
  ok("queryAll: three, IsDeleted");

  step("getDeleted / getUpdated: sobject('Lead').deleted(), .updated()");
  const end = new Date(Date.now() + 60 * 1000);
  const deleted = await leads.deleted(start, end);
  const deletedIds = new Set(deleted.deletedRecords.map((r) => r.id));
  for (const id of [singleId, ids[0], ids[1]]) assert.ok(deletedIds.has(id), `deleted lists ${id}`);
  assert.match(deleted.latestDateCovered, DATETIME);
  const updated = await leads.updated(start, end);
  assert.ok(ids.slice(2).every((id) => updated.ids.includes(id)), "updated lists the live bulk leads");
  ok("deleted and updated");
}

async function expiry(conn) {
  step("session expired mid-way: jsforce refreshes on 401 INVALID_SESSION_ID and retries");
  const refreshes = [];
  conn.on("refresh", (token) => refreshes.push(token));
  const before = conn.accessToken;
  await admin("POST", `/salesforce/orgs/${sf.org_id}/sessions/expire`);
  const res = await conn.query("SELECT Id FROM Lead LIMIT 1");
  assert.equal(res.totalSize, 1, "the query went through after the refresh");
  assert.equal(refreshes.length, 1, "one refresh");
  assert.notEqual(conn.accessToken, before, "a new access token");
  assert.equal(conn.instanceUrl, sf.instance_url, "instance_url from the token reply");
  ok("one refresh, the query answered");

  await admin("POST", `/salesforce/orgs/${sf.org_id}/sessions/expire`);
  const parallel = await Promise.all([
    conn.query("SELECT Id FROM Lead LIMIT 1"),
    conn.sobject("Lead").describe(),
    conn.limits(),
  ]);
  assert.equal(parallel[0].totalSize, 1);
  assert.equal(refreshes.length, 2, "three calls, one refresh between them");
  ok("three parallel calls on an expired session: one refresh");

  step("a refused refresh surfaces as 'Unable to refresh session'");
  const stale = connect("00Dexpired!token", "5Aep861bogus");
  const error = await stale.query("SELECT Id FROM Lead LIMIT 1").then(
    () => assert.fail("a bad refresh token must fail"),
    (e) => e,
  );
  assert.match(error.message, /^Unable to refresh session due to: /, error.message);
  ok(`refused refresh: ${error.message}`);
}

function jwtAssertion(privateKey, claims) {
  const b64 = (x) => Buffer.from(JSON.stringify(x)).toString("base64url");
  const data = `${b64({ alg: "RS256" })}.${b64(claims)}`;
  return `${data}.${crypto.sign("RSA-SHA256", Buffer.from(data), privateKey).toString("base64url")}`;
}

async function jwtBearer() {
  step("JWT bearer flow: authorize({grant_type: jwt-bearer, assertion})");
  const { publicKey, privateKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
  await admin("POST", `/salesforce/orgs/${sf.org_id}/certificates`, {
    certificate: publicKey.export({ type: "spki", format: "pem" }),
  });
  const claims = {
    iss: sf.client_id,
    sub: sf.username,
    aud: sf.login_url,
    exp: Math.floor(Date.now() / 1000) + 180,
  };
  const conn = new jsforce.Connection({ oauth2: { loginUrl: sf.login_url, clientId: sf.client_id }, version: VERSION });
  const info = await conn.authorize({
    grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer",
    assertion: jwtAssertion(privateKey, claims),
  });
  assert.equal(info.organizationId, sf.org_id);
  assert.match(info.id, /^005\w{15}$/);
  assert.equal(conn.instanceUrl, sf.instance_url);
  const res = await conn.query("SELECT Id FROM User");
  assert.ok(res.totalSize >= 1);
  ok("JWT: a session that queries");
  const me = await conn.identity();
  assert.equal(me.user_id, info.id, "identity: user_id");
  assert.equal(me.organization_id, sf.org_id, "identity: organization_id");
  assert.equal(me.username, sf.username, "identity: username");
  ok("identity() at the token reply's id URL");

  const other = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
  const bare = new jsforce.Connection({ oauth2: { loginUrl: sf.login_url }, version: VERSION });
  await oauthRefused(
    bare.authorize({ grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer", assertion: jwtAssertion(other, claims) }),
    "invalid_grant",
    "JWT signed by an unregistered key",
  );
  await oauthRefused(
    bare.authorize({
      grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer",
      assertion: jwtAssertion(privateKey, { ...claims, exp: Math.floor(Date.now() / 1000) - 60 }),
    }),
    "invalid_grant",
    "expired JWT",
  );
}

async function spent(conn) {
  step("the daily API limit spent: 403 REQUEST_LIMIT_EXCEEDED, not retried");
  const { used } = await admin("GET", `/salesforce/orgs/${sf.org_id}/limits`);
  await admin("PUT", `/salesforce/orgs/${sf.org_id}/limits`, { daily_api_requests: used });
  const error = await refused(conn.query("SELECT Id FROM Lead LIMIT 1"), "REQUEST_LIMIT_EXCEEDED", "query past the limit");
  assert.equal(error.message, "TotalRequests Limit exceeded.");
}

async function main() {
  const token = await tokens();
  const conn = connect(token.access_token);
  const fields = await discovery(conn);
  const single = await rows(conn, fields);
  await duplicates(conn);
  const ids = await collections(conn);
  await queries(conn, ids);
  await deletions(conn, single, ids);
  await expiry(conn);
  await jwtBearer();
  await spent(conn);
}

main().then(
  () => console.log(`all ${stepNo} steps ok (${checks} checks) against ${sf.instance_url}`),
  (error) => {
    console.error("FAILED:", error?.stack ?? error);
    if (error?.data) console.error("data:", JSON.stringify(error.data));
    process.exit(1);
  },
);
