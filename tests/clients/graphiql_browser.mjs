// Drives crmsync's GraphiQL page in Debian's headless Chromium, as a user
// would, with no network but loopback:
//   node graphiql_browser.mjs <graphiql-url> <token> <connector-id>
// The page must render its editors, run a query and a startSync mutation with
// the token put in the headers pane, and stream the run's syncProgress
// subscription to its end over a WebSocket whose connection_init carries that
// header. No request may leave 127.0.0.1, and the page's Content-Security-Policy
// may refuse nothing. Exits 0 on success; on failure prints why, saves a
// screenshot in the system temp directory and exits 1.
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const [url, token, connectorId] = process.argv.slice(2);
if (!url || !token || !connectorId) {
  console.error('usage: node graphiql_browser.mjs <graphiql-url> <token> <connector-id>');
  process.exit(2);
}
const CHROMIUM = process.env.CRMSYNC_TEST_CHROMIUM || '/usr/bin/chromium';
const RUN_DEADLINE_MS = 120_000;

const requests = [];
const problems = [];
const frames = { sent: [], received: [] };

const isLoopback = (address) => new URL(address).hostname === '127.0.0.1';

function fail(message) {
  throw new Error(message);
}

// Polls `check` (which returns a value when done, else undefined) until the deadline.
async function until(what, timeoutMs, check) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) {
      return value;
    }
    if (Date.now() > deadline) {
      fail(`timed out waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function watch(page) {
  page.on('request', (request) => requests.push(request.url()));
  page.on('websocket', (socket) => {
    requests.push(socket.url());
    socket.on('framesent', (frame) => frames.sent.push(JSON.parse(frame.payload)));
    socket.on('framereceived', (frame) => frames.received.push(JSON.parse(frame.payload)));
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && /Content Security Policy|integrity/i.test(message.text())) {
      problems.push(`console: ${message.text()}`);
    }
  });
}

const editor = (selector) => `${selector} .CodeMirror`;
const QUERY_EDITOR = editor('.graphiql-query-editor');
// The headers pane is the tool editor shown first (the variables one is hidden).
const HEADERS_EDITOR = editor('.graphiql-editor-tool .graphiql-editor:not(.hidden)');
const RESULT = editor('.result-window');

async function editorText(page, selector) {
  return page.$eval(selector, (element) => element.CodeMirror.getValue());
}

async function setEditorText(page, selector, text) {
  await page.$eval(selector, (element, value) => element.CodeMirror.setValue(value), text);
}

// Runs the query editor's operation and returns the result pane's JSON once
// `done` accepts it.
async function run(page, operation, done, timeoutMs = 30_000) {
  await setEditorText(page, RESULT, '');
  await setEditorText(page, QUERY_EDITOR, operation);
  await page.click('.graphiql-execute-button');
  return until(`the result of ${operation}`, timeoutMs, async () => {
    const text = await editorText(page, RESULT);
    try {
      const result = JSON.parse(text);
      return done(result) ? result : undefined;
    } catch {
      return undefined;
    }
  });
}

async function scenario(page) {
  await page.goto(url);
  await page.waitForSelector(QUERY_EDITOR, { timeout: 30_000 });
  const placeholder = await editorText(page, HEADERS_EDITOR);
  if (!placeholder.includes('Bearer <token>')) {
    fail(`the headers pane does not hold the placeholder: ${placeholder}`);
  }
  await setEditorText(page, HEADERS_EDITOR, JSON.stringify({ Authorization: `Bearer ${token}` }));

  const query = await run(page, '{ viewer { role } connectors(first: 5) { totalCount } }', (r) => r.data || r.errors);
  if (!query.data || query.data.connectors.totalCount < 1) {
    fail(`the query did not show data: ${JSON.stringify(query)}`);
  }

  const started = await run(
    page,
    `mutation { startSync(input: {connectorId: "${connectorId}", mode: FULL}) { run { id status } } }`,
    (r) => r.data || r.errors,
  );
  const runId = started.data && started.data.startSync.run.id;
  if (!runId) {
    fail(`startSync failed: ${JSON.stringify(started)}`);
  }

  const final = await run(
    page,
    `subscription { syncProgress(runId: "${runId}") { runId status phase processed } }`,
    (r) => r.errors || ['SUCCEEDED', 'PARTIAL', 'FAILED', 'CANCELLED'].includes(r.data?.syncProgress?.status),
    RUN_DEADLINE_MS,
  );
  if (!['SUCCEEDED', 'PARTIAL'].includes(final.data?.syncProgress?.status)) {
    fail(`the run did not succeed: ${JSON.stringify(final)}`);
  }
  // The server ends the stream after the final event; GraphiQL then offers to run again.
  await page.waitForSelector('.graphiql-execute-button[aria-label^="Execute"]', { timeout: 10_000 });

  const init = frames.sent.find((f) => f.type === 'connection_init');
  if (init?.payload?.Authorization !== `Bearer ${token}`) {
    fail(`connection_init did not carry the headers pane's Authorization: ${JSON.stringify(init)}`);
  }
  const events = frames.received.filter((f) => f.type === 'next');
  if (!frames.received.some((f) => f.type === 'complete')) {
    fail('the server did not complete the subscription');
  }
  return { runId, status: final.data.syncProgress.status, events: events.length };
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  // Any host name but loopback fails to resolve: the page must need no network.
  args: ['--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
});
let page;
let status = 0;
try {
  const context = await browser.newContext();
  await context.route('**/*', (route) =>
    isLoopback(route.request().url()) ? route.continue() : route.abort('internetdisconnected'),
  );
  page = await context.newPage();
  watch(page);
  const summary = await scenario(page);
  const outside = requests.filter((r) => !isLoopback(r));
  if (outside.length > 0) {
    fail(`requests left 127.0.0.1: ${outside.join(', ')}`);
  }
  if (problems.length > 0) {
    fail(problems.join('\n'));
  }
  console.log(`graphiql ok: ${JSON.stringify({ ...summary, requests: requests.length })}`);
} catch (error) {
  status = 1;
  console.error(`graphiql browser test failed: ${error.stack || error}`);
  for (const problem of problems) {
    console.error(problem);
  }
  console.error(`requests: ${requests.join('\n  ')}`);
  if (page) {
    const shot = path.join(os.tmpdir(), `crmsync-graphiql-${process.pid}.png`);
    await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
    console.error(`screenshot: ${shot}`);
  }
} finally {
  await browser.close();
}
process.exit(status);
