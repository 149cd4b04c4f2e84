# follow_run.py over the legacy protocol (subscriptions-transport-ws, offered
# alone as "graphql-ws"), as Apollo's old client and many dashboards speak it.
# Prints each event, then the sub-protocol the server chose.
import asyncio
import json
import os
import sys

from gql import Client, gql
from gql.transport.websockets import WebsocketsTransport

PROGRESS = gql("""
    subscription Progress($runId: ID!) {
      syncProgress(runId: $runId) {
        status phase processed
        legs { direction created updated unchanged rejected conflicts }
      }
    }
""")


async def main(url, run_id):
    transport = WebsocketsTransport(
        url=url,
        init_payload={"Authorization": f"Bearer {os.environ['CRMSYNC_TOKEN']}"},
        subprotocols=[WebsocketsTransport.APOLLO_SUBPROTOCOL],
    )
    PROGRESS.variable_values = {"runId": run_id}
    async with Client(transport=transport) as session:
        async for event in session.subscribe(PROGRESS):
            print(json.dumps(event["syncProgress"]), flush=True)
        print(json.dumps({"subprotocol": transport.subprotocol}), flush=True)


asyncio.run(main(os.environ["CRMSYNC_WS_URL"], sys.argv[1]))
