# Follows a sync run to its end over a subscription, with gql 4:
#   CRMSYNC_TOKEN=<token> python follow_run.py <run id>
import asyncio
import json
import os
import sys

from gql import Client, gql
from gql.transport.websockets import WebsocketsTransport

URL = os.environ.get("CRMSYNC_WS_URL", "ws://127.0.0.1:8080/graphql/ws")
PROGRESS = gql("""
    subscription Progress($runId: ID!) {
      syncProgress(runId: $runId) {
        status phase processed
        legs { direction created updated unchanged rejected conflicts }
      }
    }
""")


async def main(run_id):
    transport = WebsocketsTransport(
        url=URL,
        # The token goes in connection_init's payload, not in a header.
        init_payload={"Authorization": f"Bearer {os.environ['CRMSYNC_TOKEN']}"},
    )
    PROGRESS.variable_values = {"runId": run_id}
    async with Client(transport=transport) as session:
        async for event in session.subscribe(PROGRESS):
            print(json.dumps(event["syncProgress"]), flush=True)


asyncio.run(main(sys.argv[1]))
