#!/bin/sh
# Installs chdb (an embedded current ClickHouse from the npm registry, ~550 MB unpacked) into
# internal/chtest/chdb/node_modules for the modern-engine checks of the Go tests.
# Needs node (>= 18) and npm. Idempotent: does nothing when the pinned version is present.
set -eu
cd "$(dirname "$0")"
if node -e 'const v=require("chdb/package.json").version; process.exit(v==="3.4.0"?0:1)' 2>/dev/null &&
   node -e 'require("chdb")' 2>/dev/null; then
	echo "chdb already installed in $(pwd)/node_modules"
	exit 0
fi
# npm install (not npm ci): the lock file pins chdb and its Linux x64 library; npm ci would reject
# it for lacking the other platforms' optional packages.
npm install --no-audit --no-fund
node -e 'const {query}=require("chdb"); console.log("chdb ClickHouse " + query("SELECT version()", "TSV").trim())'
