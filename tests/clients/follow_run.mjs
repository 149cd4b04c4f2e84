// Follows a sync run to its end over a subscription, with graphql-ws:
//   CRMSYNC_TOKEN=<token> node follow_run.mjs <run id>
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const client = createClient({
  url: process.env.CRMSYNC_WS_URL ?? "ws://127.0.0.1:8080/graphql/ws",
  webSocketImpl: WebSocket,
  // The token goes in connection_init's payload, not in a header.
  connectionParams: { Authorization: `Bearer ${process.env.CRMSYNC_TOKEN}` },
});

const events = client.iterate({
  query: `subscription Progress($runId: ID!) {
    syncProgress(runId: $runId) {
      status phase processed
      legs { direction created updated unchanged rejected conflicts }
    }
  }`,
  variables: { runId: process.argv[2] },
});
try {
  for await (const event of events) {
    if (event.errors) throw new Error(JSON.stringify(event.errors));
    console.log(JSON.stringify(event.data.syncProgress));
  }
} finally {
  await client.dispose();
}
