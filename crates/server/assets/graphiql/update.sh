#!/usr/bin/env bash
# Refreshes the GraphiQL assets served from the binary (see README.md here).
# Usage: crates/server/assets/graphiql/update.sh GRAPHIQL_VERSION REACT_VERSION
# e.g.   crates/server/assets/graphiql/update.sh 3.9.0 18.3.1
# Needs `npm` (the packages come from the npm registry with `npm pack`).
# Afterwards: update the versions in crates/server/src/graphiql.rs and the
# table in README.md, run the browser test (cargo test --test it browser::),
# and commit the new files (and `git rm` the old ones).
set -euo pipefail
graphiql=${1:?GraphiQL version, e.g. 3.9.0}
react=${2:?React version, e.g. 18.3.1}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "graphiql@$graphiql" "react@$react" "react-dom@$react" >/dev/null
for pkg in graphiql-"$graphiql" react-"$react" react-dom-"$react"; do
    mkdir "$pkg" && tar xzf "$pkg.tgz" -C "$pkg"
done
cp "graphiql-$graphiql/package/graphiql.min.js" "$here/graphiql-$graphiql.min.js"
cp "graphiql-$graphiql/package/graphiql.min.css" "$here/graphiql-$graphiql.min.css"
cp "react-$react/package/umd/react.production.min.js" "$here/react-$react.production.min.js"
cp "react-dom-$react/package/umd/react-dom.production.min.js" "$here/react-dom-$react.production.min.js"
cp "graphiql-$graphiql/package/LICENSE" "$here/LICENSE.graphiql"
cp "react-$react/package/LICENSE" "$here/LICENSE.react"
cp "react-dom-$react/package/LICENSE" "$here/LICENSE.react-dom"
(cd "$here" && sha256sum ./*.js ./*.css)
