-- Application user for ClickHouse 20.5 and later (SQL access control): SELECT and INSERT on the audit
-- database only, so it cannot ALTER (no UPDATE/DELETE mutations), DROP, TRUNCATE or CREATE.
-- Run as an administrator after schema.sql or schema-modern.sql, then start the sink with
-- create_schema: false. Replace the placeholder with: echo -n 'the password' | sha256sum
-- ClickHouse 18.16 has no SQL GRANT: use users.d/flowker-audit.xml instead (see README.md).
-- Generated from plugins/clickhouse (DDL, Grants) by `go test ./plugins/clickhouse -run TestDeploymentFiles -update`.
-- Do not edit: a test compares this file with the code.

CREATE USER IF NOT EXISTS flowker_audit IDENTIFIED WITH sha256_hash BY 'REPLACE_WITH_SHA256_HEX_OF_THE_PASSWORD';

GRANT SELECT, INSERT ON audit.* TO flowker_audit;
