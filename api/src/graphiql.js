// crmsync's GraphiQL start-up script, served from the binary with the pinned
// React, graphql-ws and GraphiQL builds it uses (api/src/graphiql.rs). It is a
// file of its own, not an inline script, so the page's Content-Security-Policy
// can refuse every inline script.
(function () {
  'use strict';

  const root = document.getElementById('graphiql');
  const endpoint = root.dataset.endpoint;
  // The WebSocket is on the page's own host, over wss:// when the page is https.
  const subscriptionUrl = (function () {
    const url = new URL(root.dataset.subscriptionEndpoint, window.location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    return url.href;
  })();
  const placeholderHeaders = '{\n  "Authorization": "Bearer <token>"\n}';

  document.body.style.margin = '0';
  root.style.height = '100vh';

  // The headers pane's headers, without the ones still holding the
  // placeholder: a placeholder token would only be refused.
  function usableHeaders(headers) {
    const usable = {};
    for (const [name, value] of Object.entries(headers || {})) {
      if (typeof value === 'string' && value.includes('<token>')) {
        continue;
      }
      usable[name] = value;
    }
    return usable;
  }

  // The type of the operation GraphiQL runs (`query`, `mutation` or
  // `subscription`), from a scan of the document's top level with comments
  // and strings blanked out. GraphiQL's parsed document can lag behind an
  // edit, so the query text is what decides.
  function operationType(query, operationName) {
    const source = query.replace(/"""[\s\S]*?"""|"(?:[^"\\\n]|\\.)*"|#[^\n]*/g, ' ');
    const tokens = source.match(/[{}()]|[_A-Za-z][_0-9A-Za-z]*/g) || [];
    const operations = [];
    let depth = 0;
    // Between a definition's first word and its selection set.
    let header = false;
    tokens.forEach((token, i) => {
      if (token === '{' || token === '(') {
        if (depth === 0 && token === '{') {
          if (!header) {
            operations.push({ type: 'query', name: '' });
          }
          header = false;
        }
        depth += 1;
      } else if (token === '}' || token === ')') {
        depth -= 1;
      } else if (depth === 0 && !header) {
        header = true;
        if (['query', 'mutation', 'subscription'].includes(token)) {
          const next = tokens[i + 1];
          operations.push({ type: token, name: /^[_A-Za-z]/.test(next || '') ? next : '' });
        }
      }
    });
    const chosen = operationName
      ? operations.find((operation) => operation.name === operationName)
      : operations[0];
    return chosen ? chosen.type : 'query';
  }

  async function overHttp(params, headers) {
    const response = await fetch(endpoint, {
      method: 'POST',
      headers: { ...headers, 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(params),
      credentials: 'omit',
    });
    const text = await response.text();
    try {
      return JSON.parse(text);
    } catch {
      // A proxy's error page, or a body limit's plain-text answer.
      return { errors: [{ message: `HTTP ${response.status}: ${text.slice(0, 200)}` }] };
    }
  }

  // One graphql-ws client per set of headers. The server authenticates a
  // socket once, from its connection_init payload, so a changed token needs a
  // new socket: changing the headers pane replaces the client.
  let socket = null;
  function clientFor(headers) {
    const key = JSON.stringify(headers);
    if (socket && socket.key === key) {
      return socket.client;
    }
    if (socket) {
      socket.client.dispose();
    }
    const client = graphqlWs.createClient({
      url: subscriptionUrl,
      connectionParams: headers,
      lazy: true,
      retryAttempts: 0,
    });
    socket = { key, client };
    return client;
  }

  // A closed socket reaches the error sink as a CloseEvent, which GraphiQL
  // would show as `{}`: say what happened instead.
  function describe(error) {
    if (error && typeof error.code === 'number' && 'reason' in error) {
      return new Error(`the WebSocket closed (${error.code}): ${error.reason || 'no reason given'}`);
    }
    return error;
  }

  function overWebSocket(params, headers) {
    const client = clientFor(headers);
    return {
      subscribe(observer) {
        const unsubscribe = client.subscribe(params, {
          next: (value) => observer.next(value),
          error: (error) => observer.error(describe(error)),
          complete: () => observer.complete(),
        });
        return { unsubscribe };
      },
    };
  }

  function fetcher(params, options) {
    const headers = usableHeaders(options && options.headers);
    if (operationType(params.query, params.operationName) === 'subscription') {
      return overWebSocket(params, headers);
    }
    return overHttp(params, headers);
  }

  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, {
      fetcher,
      defaultHeaders: placeholderHeaders,
      defaultEditorToolsVisibility: 'headers',
      shouldPersistHeaders: false,
    }),
  );
})();
