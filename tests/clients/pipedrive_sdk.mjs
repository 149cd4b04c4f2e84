// Runs Pipedrive's official Node client (npm `pipedrive`, v2 classes, unmodified: only
// `basePath` points at the sandbox) through the operations a sync needs, and checks
// what comes back. Exits non-zero on the first mismatch.
//
// Usage: node pipedrive_sdk.mjs <base_url> <api_token> <expected_person_count>
// where base_url is the sandbox company's base URL (`.../pipedrive/<domain>`).

import assert from "node:assert/strict";
import { v2 } from "pipedrive";

const [baseUrl, apiToken, expectedCount] = process.argv.slice(2);
if (!baseUrl || !apiToken || !expectedCount) {
  console.error("usage: node pipedrive_sdk.mjs <base_url> <api_token> <expected_person_count>");
  process.exit(2);
}

const config = new v2.Configuration({ apiKey: apiToken, basePath: `${baseUrl}/api/v2` });
const persons = new v2.PersonsApi(config);
const personFields = new v2.PersonFieldsApi(config);

function step(name) {
  console.log(`ok ${name}`);
}

/** Every person field, following the cursor with small pages. */
async function allFields() {
  const fields = [];
  let cursor;
  do {
    const page = await personFields.getPersonFields({ limit: 5, cursor });
    assert.equal(page.success, true);
    fields.push(...page.data);
    cursor = page.additional_data.next_cursor ?? undefined;
  } while (cursor);
  return fields;
}

/** Every person, following the cursor. */
async function allPersons() {
  const list = [];
  let cursor;
  do {
    const page = await persons.getPersons({ limit: 100, cursor });
    assert.equal(page.success, true);
    list.push(...page.data);
    cursor = page.additional_data.next_cursor ?? undefined;
  } while (cursor);
  return list;
}

function option(field, label) {
  const found = field.options.find((o) => o.label === label);
  assert.ok(found, `option ${label} of ${field.field_name}`);
  return found.id;
}

async function main() {
  const fields = await allFields();
  const byName = (name) => fields.find((f) => f.field_name === name);
  assert.equal(fields.find((f) => f.field_code === "name")?.is_custom_field, false);
  assert.equal(
    fields.find((f) => f.field_code === "marketing_status")?.is_optional_response_field,
    true,
  );
  const status = byName("status");
  const industries = byName("industries");
  assert.equal(status.is_custom_field, true);
  assert.equal(status.field_type, "enum");
  assert.equal(industries.field_type, "set");
  assert.equal(status.field_code.length, 40);
  step(`personFields: ${fields.length} fields over cursor pages`);

  const listed = await allPersons();
  assert.equal(listed.length, Number(expectedCount));
  const ids = listed.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, "no person twice");
  assert.deepEqual(ids, [...ids].sort((a, b) => a - b), "ascending ids");
  assert.ok(listed.every((p) => !("marketing_status" in p)), "marketing_status only when asked");
  step(`getPersons: ${listed.length} persons over cursor pages`);

  const client = option(status, "Client");
  const [software, retail] = [option(industries, "Software"), option(industries, "Retail")];
  const email = `sdk.${Date.now()}@example.com`;
  const address = { value: "1 Rue de Rivoli, Paris", locality: "Paris", country: "France" };
  const added = await persons.addPerson({
    AddPersonRequest: {
      name: "Ada Lovelace",
      emails: [{ value: email, primary: true, label: "work" }],
      phones: [{ value: "+33 1 23 45 67 89", primary: true, label: "mobile" }],
      job_title: "Analyst",
      birthday: "1815-12-10",
      notes: "Created by the SDK",
      im: [{ value: "ada.l", primary: true, label: "skype" }],
      postal_address: address,
      label_ids: [2],
      visible_to: 3,
      marketing_status: "subscribed",
      custom_fields: { [status.field_code]: client, [industries.field_code]: [software, retail] },
    },
  });
  const id = added.data.id;
  assert.equal(added.data.first_name, "Ada");
  assert.equal(added.data.last_name, "Lovelace");
  assert.equal(added.data.emails[0].value, email);
  assert.equal(added.data.job_title, "Analyst");
  assert.equal(added.data.custom_fields[status.field_code], client);
  step(`addPerson: ${id}`);

  const got = (await persons.getPerson({ id })).data;
  assert.equal(got.name, "Ada Lovelace");
  assert.equal(got.birthday, "1815-12-10");
  assert.equal(got.notes, "Created by the SDK");
  assert.deepEqual(got.im, [{ value: "ada.l", primary: true, label: "skype" }]);
  assert.equal(got.postal_address.locality, "Paris");
  assert.equal(got.picture_id, null);
  assert.deepEqual(got.label_ids, [2]);
  assert.deepEqual(got.custom_fields[industries.field_code], [software, retail]);
  assert.ok(!("marketing_status" in got));
  step("getPerson");

  const withStatus = await persons.getPerson({ id, include_fields: "marketing_status" });
  assert.equal(withStatus.data.marketing_status, "subscribed");
  step("getPerson include_fields=marketing_status");

  const labelled = (
    await persons.getPerson({ id, include_option_labels: true, include_labels: true })
  ).data;
  assert.deepEqual(labelled.custom_fields[status.field_code], { id: client, label: "Client" });
  assert.deepEqual(labelled.custom_fields[industries.field_code], [
    { id: software, label: "Software" },
    { id: retail, label: "Retail" },
  ]);
  assert.deepEqual(labelled.labels, [{ id: 2, label: "Hot lead" }]);
  step("getPerson include_option_labels and include_labels");

  const newEmail = `updated.${email}`;
  const updated = await persons.updatePerson({
    id,
    UpdatePersonRequest: {
      job_title: "Chief Analyst",
      emails: [{ value: newEmail, primary: true, label: "home" }],
    },
  });
  assert.equal(updated.data.job_title, "Chief Analyst");
  assert.equal(updated.data.emails[0].value, newEmail);
  assert.equal(updated.data.name, "Ada Lovelace", "an update keeps what it does not name");
  step("updatePerson");

  const found = await persons.searchPersons({ term: newEmail, fields: "email", exact_match: true });
  assert.deepEqual(
    found.data.items.map((i) => i.item.id),
    [id],
  );
  assert.deepEqual(found.data.items[0].item.emails, [newEmail]);
  step("searchPersons by email");

  const refused = await persons.addPerson({ AddPersonRequest: { emails: [] } }).then(
    () => null,
    (error) => error,
  );
  assert.equal(refused?.success, false);
  assert.equal(refused?.error, "Name must be given.");
  step("addPerson without a name is refused");

  const deleted = await persons.deletePerson({ id });
  assert.equal(deleted.data.id, id);
  const afterDelete = await persons.getPersons({ ids: String(id) });
  assert.deepEqual(afterDelete.data, []);
  assert.equal((await persons.getPerson({ id })).data.is_deleted, true);
  step("deletePerson");
}

main().then(
  () => console.log("all ok"),
  (error) => {
    const detail = error?.response?.data ?? error;
    console.error("FAILED:", detail instanceof Error ? detail.stack : JSON.stringify(detail));
    process.exit(1);
  },
);
