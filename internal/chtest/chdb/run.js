#!/usr/bin/env node
// Runs SQL statements on chdb (an embedded current ClickHouse) for the Go tests.
//
// stdin:  {"statements": ["SQL", ...], "format": "TSV"}
// stdout: [{"ok": true, "output_b64": "..."} | {"ok": false, "error": "..."}, ...], one entry per
//         statement, in order. Every statement runs in one session (one temporary database
//         directory), and a failing statement does not stop the following ones. Output bytes are
//         base64-encoded so that binary columns (FixedString hashes) survive unchanged.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Session } = require('chdb');

async function main() {
  const input = JSON.parse(fs.readFileSync(0, 'utf8'));
  const format = input.format || 'TSV';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flowker-chdb-'));
  const session = new Session(dir);
  const out = [];
  try {
    for (const sql of input.statements) {
      try {
        const r = await session.queryAsync(sql, { format });
        out.push({ ok: true, output_b64: Buffer.from(r.bytes()).toString('base64') });
      } catch (e) {
        out.push({ ok: false, error: String((e && e.message) || e) });
      }
    }
  } finally {
    session.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((e) => {
  process.stderr.write(String((e && e.stack) || e) + '\n');
  process.exit(1);
});
