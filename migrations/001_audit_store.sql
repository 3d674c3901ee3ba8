-- edgewarden fleet audit store (docs/collect.md). Applied once by `edgewarden collect --migrate`.

-- One row per journal record of every gateway. Partitioned by record time (daily
-- partitions, created on demand by the collector; retention = DROP TABLE of old ones).
-- The primary key must contain the partition key: (gateway_id, seq, ts). A record's ts is
-- part of its signed bytes, so a redelivered record always lands on the same key.
CREATE TABLE audit_records (
  gateway_id text        NOT NULL,
  seq        bigint      NOT NULL,
  ts         timestamptz NOT NULL,
  type       text        NOT NULL,
  session    text,
  client_id  text,
  sub        text,
  topic      text,
  rule       text,
  -- the record exactly as the gateway stored and hashed it (msgpack, its own hash in the last
  -- 64 bytes): re-verifiable, and the source of every other field (audit query decodes it)
  raw        bytea       NOT NULL,
  PRIMARY KEY (gateway_id, seq, ts)
) PARTITION BY RANGE (ts);

-- records arrive roughly in time order: a BRIN index is a few pages per partition
CREATE INDEX audit_records_ts ON audit_records USING brin (ts);
CREATE INDEX audit_records_client ON audit_records (client_id, ts) WHERE client_id IS NOT NULL;

-- Per gateway: the chain head (highest stored seq and its hash) and the pinned public key.
-- Collectors lock this row (SELECT … FOR UPDATE) while storing a batch of that gateway, so
-- batches of one gateway are stored one at a time even across collector processes.
CREATE TABLE gateways (
  gateway_id  text PRIMARY KEY,
  fleet       text,
  public_jwk  jsonb,
  head_seq    bigint NOT NULL DEFAULT 0,
  head_hash   text,
  first_seen  timestamptz NOT NULL DEFAULT now(),
  last_batch  timestamptz
);

-- Sequence ranges missing right now. A range arriving later (shared subscriptions reorder
-- batches across collectors) shrinks or deletes its row; what stays is really missing.
CREATE TABLE gaps (
  id          bigserial PRIMARY KEY,
  gateway_id  text   NOT NULL,
  from_seq    bigint NOT NULL,
  to_seq      bigint NOT NULL,
  detected_at timestamptz NOT NULL DEFAULT now(),
  CHECK (from_seq <= to_seq)
);
CREATE INDEX gaps_gateway ON gaps (gateway_id, from_seq);

-- Batches refused by verification (bad or unknown signature, an edited record, a broken
-- link, a fork of stored history). Nothing of such a batch is stored in audit_records.
CREATE TABLE tamper (
  id          bigserial PRIMARY KEY,
  gateway_id  text,
  topic       text   NOT NULL,
  first_seq   bigint,
  last_seq    bigint,
  seq         bigint,
  reason      text   NOT NULL,
  detected_at timestamptz NOT NULL DEFAULT now(),
  -- the received payload for forensics (capped by the collector)
  payload     bytea
);
CREATE INDEX tamper_gateway ON tamper (gateway_id, detected_at);
