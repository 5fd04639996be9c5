-- Flowker's audit_events migration (000001_audit_events.up.sql), as described field by field in
-- the project's Flowker contract (reference/flowker-contract.md, section 5: storage, the BEFORE
-- INSERT trigger calculate_audit_event_hash with its advisory lock, highest-id link, 13-field
-- input and input::bytea cast, and the triggers that block UPDATE, DELETE and TRUNCATE). The
-- original file could not be fetched here; TestMigrationReproducesFlowkerVectors checks this
-- text against hashes produced by Flowker's real trigger (testdata/flowker-chain-vectors.json and
-- the contract's section 5.5, which includes a backslash row).

CREATE TYPE audit_event_type AS ENUM (
    'WORKFLOW_CREATED', 'WORKFLOW_UPDATED', 'WORKFLOW_ACTIVATED', 'WORKFLOW_DEACTIVATED', 'WORKFLOW_DRAFTED', 'WORKFLOW_DELETED',
    'EXECUTION_STARTED', 'EXECUTION_COMPLETED', 'EXECUTION_FAILED',
    'PROVIDER_CONFIG_CREATED', 'PROVIDER_CONFIG_UPDATED', 'PROVIDER_CONFIG_DELETED',
    'PROVIDER_CALL_STARTED', 'PROVIDER_CALL_COMPLETED', 'PROVIDER_CALL_FAILED'
);
CREATE TYPE audit_action AS ENUM ('CREATE', 'UPDATE', 'DELETE', 'ACTIVATE', 'DEACTIVATE', 'DRAFT', 'EXECUTE');
CREATE TYPE audit_result AS ENUM ('SUCCESS', 'FAILED');
CREATE TYPE audit_resource_type AS ENUM ('workflow', 'execution', 'provider_config');
CREATE TYPE audit_actor_type AS ENUM ('user', 'system', 'api_key');

CREATE TABLE audit_events (
    id            BIGSERIAL PRIMARY KEY,
    event_id      UUID NOT NULL UNIQUE,
    event_type    audit_event_type NOT NULL,
    action        audit_action NOT NULL,
    result        audit_result NOT NULL,
    resource_type audit_resource_type NOT NULL,
    resource_id   VARCHAR(255) NOT NULL,
    actor_type    audit_actor_type NOT NULL,
    actor_id      VARCHAR(255) NOT NULL,
    actor_ip      VARCHAR(45) NOT NULL DEFAULT '0.0.0.0',
    context       JSONB NOT NULL DEFAULT '{}',
    metadata      JSONB NOT NULL DEFAULT '{}',
    created_at    TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    hash          VARCHAR(64) NOT NULL,
    previous_hash VARCHAR(64)
);

CREATE INDEX idx_audit_events_resource ON audit_events (resource_type, resource_id);
CREATE INDEX idx_audit_events_event_type ON audit_events (event_type);
CREATE INDEX idx_audit_events_created_at ON audit_events (created_at);
CREATE INDEX idx_audit_events_metadata ON audit_events USING GIN (metadata);

CREATE OR REPLACE FUNCTION calculate_audit_event_hash() RETURNS TRIGGER AS $$
DECLARE
    prev  TEXT;
    input TEXT;
BEGIN
    PERFORM pg_advisory_xact_lock(314159265);
    SELECT hash INTO prev FROM audit_events ORDER BY id DESC LIMIT 1;
    NEW.previous_hash := prev;
    input := COALESCE(prev, 'GENESIS') || '|' ||
             NEW.event_id::text || '|' ||
             NEW.event_type::text || '|' ||
             NEW.action::text || '|' ||
             NEW.result::text || '|' ||
             NEW.resource_id || '|' ||
             NEW.resource_type::text || '|' ||
             NEW.actor_type::text || '|' ||
             NEW.actor_id || '|' ||
             NEW.actor_ip || '|' ||
             NEW.context::text || '|' ||
             NEW.metadata::text || '|' ||
             to_char(NEW.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
    NEW.hash := encode(sha256(input::bytea), 'hex');
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_events_hash BEFORE INSERT ON audit_events
    FOR EACH ROW EXECUTE FUNCTION calculate_audit_event_hash();

CREATE OR REPLACE FUNCTION prevent_audit_event_modification() RETURNS TRIGGER AS $$
BEGIN
    RAISE EXCEPTION 'audit events are immutable: % is not allowed', TG_OP;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION prevent_audit_event_modification();
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION prevent_audit_event_modification();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION prevent_audit_event_modification();
