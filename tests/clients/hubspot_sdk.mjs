// Runs HubSpot's official Node client (npm `@hubspot/api-client`, unmodified: only
// `basePath` points at the sandbox) through the contacts operations a sync needs - the
// basic API, batch, search, properties, owners and an OAuth refresh - and the OAuth app's
// webhooks (settings, subscriptions, and a signed delivery checked with the SDK's own
// `Signature.isValid`), and checks every reply. Exits non-zero on the first mismatch.
//
// Usage: node hubspot_sdk.mjs [<description> [<expected_contact_count>]]
// where <description> is the sandbox's JSON description (as printed by `crmsync sandbox`,
// or just its "hubspot" object), else the environment's HUBSPOT_SANDBOX; the count
// (else HUBSPOT_CONTACT_COUNT) is how many unarchived contacts the portal holds at start.

import assert from "node:assert/strict";
import http from "node:http";
import hubspot from "@hubspot/api-client";

const raw = process.argv[2] ?? process.env.HUBSPOT_SANDBOX;
const expectedCount = process.argv[3] ?? process.env.HUBSPOT_CONTACT_COUNT;
if (!raw) {
  console.error(
    "usage: node hubspot_sdk.mjs <sandbox description JSON> [<expected contact count>]",
  );
  process.exit(2);
}
const described = JSON.parse(raw);
const hs = described.hubspot ?? described;
for (const key of ["base_url", "access_token", "client_id", "client_secret", "refresh_token"]) {
  assert.ok(hs[key], `the description has hubspot.${key}`);
}

function client(accessToken) {
  return new hubspot.Client({ accessToken, basePath: hs.base_url, numberOfApiCallRetries: 0 });
}

const api = client(hs.access_token);
const contacts = api.crm.contacts;
const MISSING_ID = "999999999";
const DEFAULT_PROPERTIES = [
  "createdate",
  "email",
  "firstname",
  "hs_object_id",
  "lastmodifieddate",
  "lastname",
];
// Returned whatever properties a read names ("basic system fields that cannot be excluded").
const SYSTEM_PROPERTIES = ["createdate", "hs_object_id", "lastmodifieddate"];
const STAGES = [
  "subscriber",
  "lead",
  "marketingqualifiedlead",
  "salesqualifiedlead",
  "opportunity",
  "customer",
  "evangelist",
  "other",
];

let steps = 0;
function step(name) {
  steps += 1;
  console.log(`ok ${name}`);
}

/** The ApiException a call must throw, with HubSpot's error envelope as its body. */
async function refused(promise, code, what) {
  const error = await promise.then(
    (reply) => assert.fail(`${what}: expected HTTP ${code}, got a reply ${JSON.stringify(reply)}`),
    (e) => e,
  );
  // The SDK's ApiException (one class per generated API, none exported): code, body, headers.
  assert.ok(
    typeof error?.code === "number",
    `${what}: not an ApiException: ${error?.stack ?? error}`,
  );
  assert.equal(error.code, code, `${what}: ${error.message}`);
  assert.equal(typeof error.body, "object", `${what}: the body is parsed JSON: ${error.message}`);
  return error.body;
}

/** HubSpot's `{status:"error", message, correlationId, category}`. */
function assertEnvelope(body, category, what) {
  assert.equal(body.status, "error", `${what}: ${JSON.stringify(body)}`);
  assert.equal(body.category, category, `${what}: ${JSON.stringify(body)}`);
  assert.match(body.correlationId ?? "", /^[0-9a-f-]{36}$/, `${what}: correlationId`);
  assert.equal(typeof body.message, "string", `${what}: message`);
}

function assertDate(value, what) {
  assert.ok(
    value instanceof Date && !Number.isNaN(value.getTime()),
    `${what} is a valid date: ${value}`,
  );
}

/** Checks an object reply's shape and returns it. */
function assertObject(object, what) {
  assert.match(object.id, /^\d+$/, `${what}: id`);
  assert.equal(object.properties.hs_object_id, object.id, `${what}: hs_object_id`);
  assertDate(object.createdAt, `${what}: createdAt`);
  assertDate(object.updatedAt, `${what}: updatedAt`);
  assert.equal(object.archived, false, `${what}: archived`);
  return object;
}

// HubSpot allows 5 search requests per second per portal (a 429 beyond); the searches are
// paced to that, as a client of the real API must be.
const SEARCHES_PER_SECOND = 5;
const searchTimes = [];
async function paced(call) {
  if (searchTimes.length >= SEARCHES_PER_SECOND) {
    const wait = searchTimes.shift() + 1050 - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  }
  try {
    return await call();
  } finally {
    searchTimes.push(Date.now());
  }
}

/** Every page of a paged call, following `paging.next.after`. */
async function allPages(page) {
  const results = [];
  let after;
  let pages = 0;
  do {
    const reply = await page(after);
    results.push(...reply.results);
    pages += 1;
    after = reply.paging?.next?.after;
    if (after) assert.equal(reply.paging.next.link ?? `?after=${after}`, `?after=${after}`);
  } while (after);
  return { results, pages };
}

async function properties() {
  const core = api.crm.properties.coreApi;
  const all = (await core.getAll("contacts")).results;
  const byName = new Map(all.map((p) => [p.name, p]));
  for (const name of [
    ...DEFAULT_PROPERTIES,
    "lifecyclestage",
    "hs_email_optout",
    "hubspot_owner_id",
  ]) {
    assert.ok(byName.has(name), `property ${name} is listed`);
  }
  const email = byName.get("email");
  assert.equal(email.type, "string");
  assert.equal(email.hubspotDefined, true);
  assert.equal(email.modificationMetadata.readOnlyValue, false);
  assert.equal(byName.get("hs_object_id").modificationMetadata.readOnlyValue, true);
  assert.equal(byName.get("hs_email_optout").type, "bool");
  for (const [name, type] of Object.entries(hs.custom_properties ?? {})) {
    assert.equal(byName.get(name)?.type, type, `custom property ${name}`);
    assert.equal(
      byName.get(name).hubspotDefined,
      false,
      `custom property ${name} is not HubSpot's`,
    );
  }
  assert.ok(byName.has("plezi_url"), "the custom plezi_url property");
  step(`properties getAll: ${all.length} properties`);

  const stage = await core.getByName("contacts", "lifecyclestage");
  assert.equal(stage.type, "enumeration");
  assert.deepEqual(
    stage.options.map((o) => o.value),
    STAGES,
  );
  assert.ok(
    stage.options.every((o) => typeof o.label === "string" && typeof o.displayOrder === "number"),
  );
  step("properties getByName lifecyclestage");

  const missing = await refused(
    core.getByName("contacts", "no_such_property"),
    404,
    "getByName missing",
  );
  assert.equal(missing.status, "error");
  step("properties getByName missing -> 404");

  const name = `sdk_tier_${Date.now()}`;
  const created = await core.create("contacts", {
    name,
    label: "SDK tier",
    type: "enumeration",
    fieldType: "select",
    groupName: "contactinformation",
    description: "Created by the SDK test",
    options: [
      { label: "Gold", value: "gold", displayOrder: 1, hidden: false },
      { label: "Silver", value: "silver", displayOrder: 2, hidden: false },
    ],
  });
  assert.equal(created.name, name);
  assert.equal(created.type, "enumeration");
  assert.equal(created.hubspotDefined ?? false, false);
  assert.deepEqual(
    created.options.map((o) => [o.value, o.label]),
    [
      ["gold", "Gold"],
      ["silver", "Silver"],
    ],
  );
  const fetched = await core.getByName("contacts", name);
  assert.equal(fetched.label, "SDK tier");
  const again = await refused(
    core.create("contacts", {
      name,
      label: "Again",
      type: "string",
      fieldType: "text",
      groupName: "contactinformation",
    }),
    409,
    "a property that exists",
  );
  assertEnvelope(again, "OBJECT_ALREADY_EXISTS", "a property that exists");
  step(`properties create ${name} (201) and read back; again -> 409`);
  return name;
}

async function owners() {
  const ownersApi = api.crm.owners.ownersApi;
  const { results, pages } = await allPages((after) => ownersApi.getPage(undefined, after, 2));
  assert.ok(results.length > 0, "owners are seeded");
  assert.ok(pages > 1 || results.length <= 2, "owners over pages of 2");
  for (const o of results) {
    assert.match(o.id, /^\d+$/);
    assert.match(o.email, /@/);
    assert.equal(o.archived, false);
    assertDate(o.createdAt, `owner ${o.id} createdAt`);
    assert.ok(Array.isArray(o.teams ?? []));
  }
  const described = Object.entries(hs.owners ?? {});
  for (const [id, email] of described) {
    const listed = results.find((o) => o.id === id);
    if (listed) assert.equal(listed.email, email, `owner ${id}`);
  }
  const first = results[0];
  const byEmail = await ownersApi.getPage(first.email);
  assert.deepEqual(
    byEmail.results.map((o) => o.id),
    [first.id],
  );
  const one = await ownersApi.getById(Number(first.id));
  assert.equal(one.email, first.email);
  await refused(ownersApi.getById(987654321), 404, "owner getById missing");
  const archived = await ownersApi.getPage(undefined, undefined, 100, true);
  assert.ok(
    archived.results.every((o) => o.archived === true),
    "archived=true lists archived owners",
  );
  assert.ok(!archived.results.some((o) => results.some((r) => r.id === o.id)));
  step(
    `owners getPage: ${results.length} over ${pages} pages, by e-mail, ${archived.results.length} archived; getById`,
  );
  return first;
}

async function basic(marker, tier, owner) {
  const email = `ada.${marker}@example.com`;
  const created = assertObject(
    await contacts.basicApi.create({
      properties: {
        email,
        firstname: "Ada",
        lastname: marker,
        lifecyclestage: "lead",
        plezi_url: "https://example.com/ada",
        hubspot_owner_id: owner.id,
        [tier]: "gold",
      },
      associations: [],
    }),
    "create",
  );
  const id = created.id;
  assert.equal(created.properties.email, email);
  assert.equal(created.properties.firstname, "Ada");
  assert.equal(created.properties.lifecyclestage, "lead");
  assert.equal(created.properties[tier], "gold");
  step(`basicApi.create (201): ${id}`);

  const plain = assertObject(await contacts.basicApi.getById(id), "getById");
  assert.deepEqual(
    Object.keys(plain.properties).sort(),
    DEFAULT_PROPERTIES,
    "the default properties",
  );
  assert.equal(plain.properties.lastname, marker);
  assertDate(new Date(plain.properties.createdate), "createdate");
  assert.equal(new Date(plain.properties.lastmodifieddate).getTime(), plain.updatedAt.getTime());
  step("basicApi.getById with the default properties");

  const names = ["plezi_url", "lifecyclestage", "hubspot_owner_id", tier, "no_such_property"];
  const asked = assertObject(await contacts.basicApi.getById(id, names), "getById properties=");
  assert.equal(asked.properties.plezi_url, "https://example.com/ada");
  assert.equal(asked.properties.hubspot_owner_id, owner.id);
  assert.equal(asked.properties[tier], "gold");
  assert.deepEqual(
    Object.keys(asked.properties).sort(),
    [...SYSTEM_PROPERTIES, ...names.slice(0, 4)].sort(),
    "the asked properties (unknown ones ignored) and the system ones",
  );
  step("basicApi.getById properties=[...] (repeated parameters)");

  const byEmail = await contacts.basicApi.getById(
    email,
    ["lifecyclestage"],
    undefined,
    undefined,
    false,
    "email",
  );
  assert.equal(byEmail.id, id);
  step("basicApi.getById idProperty=email");

  const missing = await refused(contacts.basicApi.getById(MISSING_ID), 404, "getById missing");
  assertEnvelope(missing, "OBJECT_NOT_FOUND", "getById missing");
  step("basicApi.getById missing id -> ApiException 404 OBJECT_NOT_FOUND");

  const duplicate = await refused(
    contacts.basicApi.create({
      properties: { email: email.toUpperCase(), firstname: "Twin" },
      associations: [],
    }),
    409,
    "duplicate e-mail",
  );
  assertEnvelope(duplicate, "CONFLICT", "duplicate e-mail");
  assert.equal(duplicate.message, `Contact already exists. Existing ID: ${id}`);
  step("basicApi.create duplicate e-mail (other case) -> 409 CONFLICT");

  const invalid = await refused(
    contacts.basicApi.create({
      properties: { email: "not-an-email", lastname: marker },
      associations: [],
    }),
    400,
    "invalid e-mail",
  );
  assertEnvelope(invalid, "VALIDATION_ERROR", "invalid e-mail");
  assert.match(invalid.message, /^Property values were not valid: \[/);
  assert.match(invalid.message, /INVALID_EMAIL/);
  const badOption = await refused(
    contacts.basicApi.update(id, { properties: { lifecyclestage: "champion" } }),
    400,
    "unknown option",
  );
  assertEnvelope(badOption, "VALIDATION_ERROR", "unknown option");
  assert.match(badOption.message, /INVALID_OPTION/);
  step("basicApi create/update invalid values -> 400 VALIDATION_ERROR");

  const updated = assertObject(
    await contacts.basicApi.update(id, {
      properties: { firstname: "Augusta", lifecyclestage: "customer" },
    }),
    "update",
  );
  assert.equal(updated.properties.firstname, "Augusta");
  assert.equal(updated.properties.lifecyclestage, "customer");
  assert.ok(updated.updatedAt.getTime() >= created.updatedAt.getTime());
  const backwards = await contacts.basicApi.update(id, { properties: { lifecyclestage: "lead" } });
  assert.equal(backwards.properties.lifecyclestage, "customer", "lifecyclestage never moves back");
  const reread = await contacts.basicApi.getById(id, ["firstname", "lastname", "lifecyclestage"]);
  assert.equal(reread.properties.firstname, "Augusta");
  assert.equal(reread.properties.lastname, marker, "an update keeps what it does not name");
  step("basicApi.update (200), forward-only lifecyclestage");

  await refused(
    contacts.basicApi.update(MISSING_ID, { properties: { firstname: "X" } }),
    404,
    "update missing",
  );
  step("basicApi.update missing id -> 404");
  return { id, email };
}

async function listing(expected) {
  const first = await contacts.basicApi.getPage(7);
  assert.equal(first.results.length, 7);
  assert.ok(first.paging?.next?.after, "a first page of 7 has a next page");
  first.results.forEach((o, i) => assertObject(o, `getPage result ${i}`));
  const { results, pages } = await allPages((after) =>
    contacts.basicApi.getPage(100, after, ["email", "lifecyclestage"]),
  );
  const ids = results.map((o) => o.id);
  assert.equal(new Set(ids).size, ids.length, "no contact twice");
  if (expected !== undefined) assert.equal(results.length, expected, "every contact listed");
  results.forEach((o) => assertObject(o, "getPage properties= result"));
  assert.ok(results.every((o) => "email" in o.properties && "lifecyclestage" in o.properties));
  const tooMany = await refused(contacts.basicApi.getPage(101), 400, "limit 101");
  assertEnvelope(tooMany, "VALIDATION_ERROR", "limit 101");
  step(`basicApi.getPage: ${results.length} contacts over ${pages} pages; limit 101 -> 400`);
  return results.length;
}

async function batch(marker, tier, single) {
  const emails = [1, 2, 3].map((n) => `batch${n}.${marker}@example.com`);
  const created = await contacts.batchApi.create({
    inputs: emails.map((email, n) => ({
      properties: { email, firstname: `Batch${n + 1}`, lastname: marker, [tier]: "silver" },
      associations: [],
    })),
  });
  assert.equal(created.status, "COMPLETE");
  assertDate(created.startedAt, "batch create startedAt");
  assertDate(created.completedAt, "batch create completedAt");
  assert.equal(created.results.length, 3);
  created.results.forEach((o) => assertObject(o, "batch create result"));
  assert.deepEqual(created.results.map((o) => o.properties.email).sort(), [...emails].sort());
  const ids = created.results.map((o) => o.id);
  step("batchApi.create (201): 3 contacts");

  const invalid = await refused(
    contacts.batchApi.create({
      inputs: [
        { properties: { email: `ok.${marker}@example.com`, lastname: marker }, associations: [] },
        { properties: { email: "not-an-email", lastname: marker }, associations: [] },
      ],
    }),
    400,
    "batch create with an invalid input",
  );
  assertEnvelope(invalid, "VALIDATION_ERROR", "batch create with an invalid input");
  assert.match(invalid.message, /INVALID_EMAIL/);
  const tooMany = await refused(
    contacts.batchApi.read({
      inputs: Array.from({ length: 101 }, (_, n) => ({ id: String(n + 1) })),
      properties: [],
      propertiesWithHistory: [],
    }),
    400,
    "101 batch inputs",
  );
  assertEnvelope(tooMany, "VALIDATION_ERROR", "101 batch inputs");
  step("batchApi.create with an invalid input and batchApi.read of 101 -> 400 for the whole call");

  const read = await contacts.batchApi.read({
    inputs: [...ids, single.id].map((id) => ({ id })),
    properties: ["email", tier],
    propertiesWithHistory: [],
  });
  assert.equal(read.status, "COMPLETE");
  assert.equal(read.numErrors ?? 0, 0);
  assert.deepEqual(read.results.map((o) => o.id).sort(), [...ids, single.id].sort());
  assert.ok(read.results.every((o) => ["gold", "silver"].includes(o.properties[tier])));
  step("batchApi.read (200): 4 contacts");

  const partial = await contacts.batchApi.read({
    inputs: [{ id: ids[0] }, { id: MISSING_ID }],
    properties: ["email"],
    propertiesWithHistory: [],
  });
  assert.equal(partial.numErrors, 1, JSON.stringify(partial));
  assert.deepEqual(
    partial.results.map((o) => o.id),
    [ids[0]],
  );
  assert.equal(partial.errors[0].status, "error");
  assert.equal(partial.errors[0].category, "OBJECT_NOT_FOUND");
  assert.deepEqual(partial.errors[0].context.ids, [MISSING_ID]);
  step("batchApi.read with an unknown id -> 207 with OBJECT_NOT_FOUND naming it");

  const byEmail = await contacts.batchApi.read({
    idProperty: "email",
    inputs: [{ id: emails[1] }, { id: single.email }],
    properties: ["firstname"],
    propertiesWithHistory: [],
  });
  assert.deepEqual(byEmail.results.map((o) => o.id).sort(), [ids[1], single.id].sort());
  step("batchApi.read idProperty=email");

  const updated = await contacts.batchApi.update({
    inputs: ids.map((id, n) => ({ id, properties: { firstname: `Renamed${n + 1}` } })),
  });
  assert.equal(updated.status, "COMPLETE");
  assert.deepEqual(updated.results.map((o) => o.properties.firstname).sort(), [
    "Renamed1",
    "Renamed2",
    "Renamed3",
  ]);
  step("batchApi.update (200)");

  const newEmail = `upsert.${marker}@example.com`;
  const upserted = await contacts.batchApi.upsert({
    inputs: [
      {
        idProperty: "email",
        id: emails[0],
        properties: { firstname: "Upserted", lastname: marker },
      },
      { idProperty: "email", id: newEmail, properties: { firstname: "Fresh", lastname: marker } },
    ],
  });
  assert.equal(upserted.status, "COMPLETE");
  const old = upserted.results.find((o) => o.id === ids[0]);
  const fresh = upserted.results.find((o) => o.id !== ids[0]);
  assert.ok(old, JSON.stringify(upserted.results));
  assert.equal(old._new, false);
  assert.equal(old.properties.firstname, "Upserted");
  assert.equal(fresh._new, true);
  assert.equal(fresh.properties.email, newEmail);
  step("batchApi.upsert by e-mail: one updated (new=false), one created (new=true)");
  return [...ids, fresh.id];
}

async function search(marker, everyId, single) {
  const search = { doSearch: (request) => paced(() => contacts.searchApi.doSearch(request)) };
  const request = (after, limit) => ({
    filterGroups: [{ filters: [{ propertyName: "lastname", operator: "EQ", value: marker }] }],
    sorts: [{ propertyName: "createdate", direction: "ASCENDING" }],
    properties: ["email", "firstname", "lastname"],
    limit,
    after,
  });
  const { results, pages } = await allPages((after) => search.doSearch(request(after, 2)));
  assert.equal(pages, 3, "five results over pages of two");
  assert.deepEqual(results.map((o) => o.id).sort(), [...everyId].sort());
  assert.ok(results.every((o) => o.properties.lastname === marker));
  results.forEach((o) => assertObject(o, "search result"));
  assert.deepEqual(
    Object.keys(results[0].properties).sort(),
    [...SYSTEM_PROPERTIES, "email", "firstname", "lastname"].sort(),
  );
  const times = results.map((o) => new Date(o.properties.createdate ?? o.createdAt).getTime());
  assert.deepEqual(
    times,
    [...times].sort((a, b) => a - b),
    "ascending createdate",
  );
  // The string form of a sort and a zero `after`, as HubSpot's own examples send them.
  const newestFirst = await search.doSearch({
    filterGroups: [{ filters: [{ propertyName: "lastname", operator: "EQ", value: marker }] }],
    sorts: ["-createdate"],
    limit: 100,
    after: "0",
  });
  const descending = newestFirst.results.map((o) => new Date(o.properties.createdate).getTime());
  assert.equal(descending.length, everyId.length);
  assert.deepEqual(
    descending,
    [...descending].sort((a, b) => b - a),
    "sorts: ['-createdate'] is descending",
  );
  const firstPage = await search.doSearch(request(undefined, 2));
  assert.equal(firstPage.total, everyId.length);
  step(`searchApi.doSearch EQ: total ${firstPage.total} over ${pages} pages, sorted`);

  const emails = results
    .filter((o) => o.id !== single.id)
    .slice(0, 2)
    .map((o) => o.properties.email);
  const byIn = await search.doSearch({
    filterGroups: [{ filters: [{ propertyName: "email", operator: "IN", values: emails }] }],
    properties: ["email"],
    limit: 10,
  });
  assert.deepEqual(byIn.results.map((o) => o.properties.email).sort(), [...emails].sort());
  const either = await search.doSearch({
    filterGroups: [
      { filters: [{ propertyName: "email", operator: "EQ", value: emails[0] }] },
      {
        filters: [
          { propertyName: "lastname", operator: "EQ", value: marker },
          { propertyName: "firstname", operator: "NEQ", value: "Fresh" },
          { propertyName: "plezi_url", operator: "HAS_PROPERTY" },
        ],
      },
    ],
    properties: ["email"],
    limit: 100,
  });
  assert.equal(either.total, 2, "e-mail EQ, or the one contact with a plezi_url");
  const since = await search.doSearch({
    filterGroups: [
      {
        filters: [
          { propertyName: "lastname", operator: "EQ", value: marker },
          {
            propertyName: "lastmodifieddate",
            operator: "GTE",
            value: String(Date.now() - 3_600_000),
          },
        ],
      },
    ],
    sorts: [{ propertyName: "lastmodifieddate", direction: "DESCENDING" }],
    limit: 100,
  });
  assert.equal(since.total, everyId.length, "GTE on lastmodifieddate (epoch ms)");
  assert.ok(!since.paging, "no next page when everything fits");
  step("searchApi.doSearch IN, filter groups (OR), NEQ, HAS_PROPERTY, GTE");

  const tooBig = await refused(
    search.doSearch({ ...request(undefined, 201) }),
    400,
    "search limit 201",
  );
  assertEnvelope(tooBig, "VALIDATION_ERROR", "search limit 201");
  step("searchApi.doSearch limit 201 -> 400 VALIDATION_ERROR");

  // Unpaced, a burst passes the per-second limit: HubSpot's 429, which the SDK's retry
  // decorator recognises by its message and retries after a second.
  const burst = (apiClient) =>
    Promise.allSettled(
      Array.from({ length: 8 }, () =>
        apiClient.crm.contacts.searchApi.doSearch(request(undefined, 1)),
      ),
    );
  const settled = await burst(api);
  const limited = settled.filter((r) => r.status === "rejected").map((r) => r.reason);
  assert.ok(limited.length >= 1, "8 searches at once pass the limit of 5 a second");
  for (const error of limited) {
    assert.equal(error.code, 429, error.message);
    assert.equal(error.body.status, "error");
    assert.equal(error.body.errorType, "RATE_LIMIT");
    assert.equal(error.body.policyName, "SECONDLY");
    assert.equal(error.body.message, "You have reached your secondly limit.");
    assert.equal(error.headers["x-hubspot-ratelimit-secondly"], "5");
  }
  const retrying = new hubspot.Client({
    accessToken: hs.access_token,
    basePath: hs.base_url,
    numberOfApiCallRetries: 3,
  });
  const retried = await burst(retrying);
  assert.ok(
    retried.every((r) => r.status === "fulfilled" && r.value.total === everyId.length),
    JSON.stringify(retried.map((r) => r.reason?.message ?? "ok")),
  );
  client(hs.access_token); // back to no retries for the clients made after this
  step(
    `search burst: ${limited.length} of 8 refused with 429 SECONDLY; the SDK's retries get all 8 through`,
  );
}

async function archive(ids, single) {
  await contacts.batchApi.archive({ inputs: ids.slice(0, 2).map((id) => ({ id })) });
  await contacts.basicApi.archive(single.id);
  for (const id of [...ids.slice(0, 2), single.id]) {
    await refused(contacts.basicApi.getById(id), 404, `getById archived ${id}`);
  }
  const archived = await allPages((after) =>
    contacts.basicApi.getPage(100, after, undefined, undefined, undefined, true),
  );
  const archivedIds = archived.results.map((o) => o.id);
  for (const id of [...ids.slice(0, 2), single.id])
    assert.ok(archivedIds.includes(id), `${id} listed as archived`);
  const one = archived.results.find((o) => o.id === single.id);
  assert.equal(one.archived, true);
  assertDate(one.archivedAt, "archivedAt");
  const again = await contacts.basicApi.getById(single.id, undefined, undefined, undefined, true);
  assert.equal(again.archived, true);
  step("batchApi.archive and basicApi.archive (204); archived=true lists them");
}

async function oauth() {
  const refreshed = await api.oauth.tokensApi.create(
    "refresh_token",
    undefined,
    undefined,
    hs.client_id,
    hs.client_secret,
    hs.refresh_token,
  );
  assert.ok(refreshed.accessToken, "an access token");
  assert.notEqual(refreshed.accessToken, hs.access_token);
  assert.equal(refreshed.refreshToken, hs.refresh_token);
  assert.equal(refreshed.expiresIn, 1800);
  assert.equal(refreshed.tokenType.toLowerCase(), "bearer");
  const app = client(refreshed.accessToken);
  const page = await app.crm.contacts.basicApi.getPage(1);
  assert.equal(page.results.length, 1);
  const owners = await app.crm.owners.ownersApi.getPage(undefined, undefined, 1);
  assert.equal(owners.results.length, 1);
  step("oauth tokensApi.create refresh_token grant; the new access token works");

  const bad = await refused(
    api.oauth.tokensApi.create(
      "refresh_token",
      undefined,
      undefined,
      hs.client_id,
      hs.client_secret,
      "no-such-token",
    ),
    400,
    "bad refresh token",
  );
  assert.equal(bad.status, "BAD_REFRESH_TOKEN", JSON.stringify(bad));
  step("oauth refresh with an unknown refresh token -> 400 BAD_REFRESH_TOKEN");

  const unauthorised = await refused(
    client("pat-na1-not-a-token").crm.contacts.basicApi.getPage(1),
    401,
    "bad token",
  );
  assertEnvelope(unauthorised, "INVALID_AUTHENTICATION", "bad token");
  step("a bad access token -> 401 INVALID_AUTHENTICATION");
}

/** A local target URL: resolves each delivery as `{ url, headers, body }`. */
async function target() {
  const deliveries = [];
  const waiting = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      const url = `http://${req.headers.host}${req.url}`;
      const delivery = { url, method: req.method, headers: req.headers, body };
      res.writeHead(200).end();
      const next = waiting.shift();
      if (next) next(delivery);
      else deliveries.push(delivery);
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/hubspot-events`,
    next: () =>
      deliveries.length > 0
        ? Promise.resolve(deliveries.shift())
        : new Promise((resolve) => waiting.push(resolve)),
    close: () => server.close(),
  };
}

async function webhooks() {
  if (!hs.app_id || !hs.developer_api_key) {
    step("webhooks skipped: the description names no app");
    return;
  }
  const developer = new hubspot.Client({
    developerApiKey: hs.developer_api_key,
    basePath: hs.base_url,
    numberOfApiCallRetries: 0,
  });
  const { settingsApi, subscriptionsApi } = developer.webhooks;
  const appId = Number(hs.app_id);
  const receiver = await target();
  try {
    const settings = await settingsApi.configure(appId, {
      targetUrl: receiver.url,
      throttling: { maxConcurrentRequests: 10 },
    });
    assert.equal(settings.targetUrl, receiver.url);
    assert.equal(settings.throttling.maxConcurrentRequests, 10);
    assertDate(settings.createdAt, "settings createdAt");
    assert.equal((await settingsApi.getAll(appId)).targetUrl, receiver.url);
    step("webhooks settingsApi.configure / getAll");

    const creation = await subscriptionsApi.create(appId, {
      eventType: "contact.creation",
      active: true,
    });
    assert.match(creation.id, /^\d+$/, "subscription id");
    assert.equal(creation.eventType, "contact.creation");
    const change = await subscriptionsApi.create(appId, {
      eventType: "contact.propertyChange",
      propertyName: "firstname",
    });
    assert.equal(change.active, false, "paused unless told otherwise");
    const patched = await subscriptionsApi.update(change.id, appId, { active: true });
    assert.equal(patched.active, true);
    const listed = await subscriptionsApi.getAll(appId);
    assert.deepEqual(
      listed.results.map((s) => s.id).sort(),
      [creation.id, change.id].sort(),
    );
    assert.equal((await subscriptionsApi.getById(change.id, appId)).propertyName, "firstname");
    step("webhooks subscriptionsApi.create / update / getAll / getById");

    const duplicate = await refused(
      subscriptionsApi.create(appId, { eventType: "contact.creation", active: true }),
      409,
      "a second contact.creation",
    );
    assertEnvelope(duplicate, "CONFLICT", "duplicate subscription");
    const badKey = new hubspot.Client({
      developerApiKey: "not-a-key",
      basePath: hs.base_url,
      numberOfApiCallRetries: 0,
    });
    assertEnvelope(
      await refused(badKey.webhooks.subscriptionsApi.getAll(appId), 401, "bad key"),
      "INVALID_AUTHENTICATION",
      "bad developer key",
    );
    step("webhooks: a duplicate subscription -> 409, a bad developer key -> 401");

    const created = await api.crm.contacts.basicApi.create({
      properties: { email: `hook${Date.now()}@example.com`, firstname: "Hook" },
    });
    const delivery = await receiver.next();
    assert.equal(delivery.headers["x-hubspot-signature-version"], "v3");
    const valid = hubspot.Signature.isValid({
      signatureVersion: "v3",
      signature: delivery.headers["x-hubspot-signature-v3"],
      clientSecret: hs.client_secret,
      requestBody: delivery.body,
      url: delivery.url,
      method: delivery.method,
      timestamp: Number(delivery.headers["x-hubspot-request-timestamp"]),
    });
    assert.ok(valid, "Signature.isValid accepts the delivery");
    const events = JSON.parse(delivery.body);
    assert.equal(events.length, 1, delivery.body);
    assert.equal(events[0].subscriptionType, "contact.creation");
    assert.equal(String(events[0].objectId), created.id);
    assert.equal(String(events[0].subscriptionId), creation.id);
    assert.equal(events[0].appId, appId);
    step("webhooks: a contact creation is delivered, Signature.isValid (v3) accepts it");

    await subscriptionsApi.archive(creation.id, appId);
    await subscriptionsApi.archive(change.id, appId);
    await refused(subscriptionsApi.getById(creation.id, appId), 404, "an archived subscription");
    await settingsApi.clear(appId);
    await refused(settingsApi.getAll(appId), 404, "cleared settings");
    step("webhooks subscriptionsApi.archive, settingsApi.clear");
  } finally {
    receiver.close();
  }
}

async function main() {
  const marker = `sdk${Date.now()}`; // lower case: HubSpot stores e-mails in lower case
  const tier = await properties();
  const owner = await owners();
  const before = await listing(expectedCount === undefined ? undefined : Number(expectedCount));
  const single = await basic(marker, tier, owner);
  const batchIds = await batch(marker, tier, single);
  await search(marker, [single.id, ...batchIds], single);
  assert.equal(await listing(before + 5), before + 5);
  await archive(batchIds, single);
  await oauth();
  await webhooks();
}

main().then(
  () => console.log(`all ok: ${steps} checks passed against ${hs.base_url}`),
  (error) => {
    console.error("FAILED:", error?.stack ?? error);
    if (error?.body) console.error("body:", JSON.stringify(error.body));
    process.exit(1);
  },
);
