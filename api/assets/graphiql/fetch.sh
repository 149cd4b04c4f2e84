#!/usr/bin/env bash
# Refreshes the GraphiQL page's assets from the npm registry: each package is
# fetched with `npm pack` at the pinned version below into a temporary
# directory, and its built browser files and licence are copied here unchanged.
# Run it after changing a version, then update README.md's table from
# SHA256SUMS and check the page in a browser (`cargo test -p crmsync --test it
# graphiql`). The server embeds these files; nothing is fetched at run time.
set -euo pipefail
cd "$(dirname "$0")"

GRAPHIQL=4.1.2
REACT=18.3.1
GRAPHQL_WS=6.4.2

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# unpack <package@version> <dir>: the package's files under $tmp/<dir>/package.
unpack() {
    mkdir -p "$tmp/$2"
    (cd "$tmp/$2" && npm pack --silent "$1" >/dev/null && tar xzf ./*.tgz)
}

unpack "graphiql@$GRAPHIQL" graphiql
unpack "react@$REACT" react
unpack "react-dom@$REACT" react-dom
unpack "graphql-ws@$GRAPHQL_WS" graphql-ws

cp "$tmp/graphiql/package/graphiql.min.js" graphiql.min.js
cp "$tmp/graphiql/package/graphiql.min.css" graphiql.min.css
cp "$tmp/graphiql/package/LICENSE" LICENSE-graphiql.txt
cp "$tmp/react/package/umd/react.production.min.js" react.production.min.js
cp "$tmp/react/package/LICENSE" LICENSE-react.txt
cp "$tmp/react-dom/package/umd/react-dom.production.min.js" react-dom.production.min.js
cp "$tmp/react-dom/package/LICENSE" LICENSE-react-dom.txt
cp "$tmp/graphql-ws/package/umd/graphql-ws.min.js" graphql-ws.min.js
cp "$tmp/graphql-ws/package/LICENSE.md" LICENSE-graphql-ws.txt

sha256sum graphiql.min.js graphiql.min.css react.production.min.js \
    react-dom.production.min.js graphql-ws.min.js LICENSE-*.txt > SHA256SUMS
cat SHA256SUMS
