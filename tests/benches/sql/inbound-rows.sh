#!/usr/bin/env bash
# What one `sync_inbound` row per record costs in SQL alone, without the framework: pages of
# 200 upserted into an application table, with and without the bookkeeping rows beside them
# (BENCHMARKS.md §8). Variants: `bare` (the application's rows and the cursor), `rows` (a
# `sync_inbound`-shaped row per record), `small` (the smallest row per record: source id, remote
# id, digest, state), `page` (one row per page holding the page's ids and digests, no index on
# them: the cheapest durable record of a page, though nothing could look an id up in it) and, on
# PostgreSQL, `gin` (the same with a GIN index on the ids, so that an id can be looked up). PostgreSQL through pgbench (database `inbound_rows`, recreated), then
# SQLite through the sqlite3 shell (a file in a temporary directory).
#   PGHOST=127.0.0.1 PGUSER=postgres tests/benches/sql/inbound-rows.sh
set -euo pipefail
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

psql -qc "DROP DATABASE IF EXISTS inbound_rows" -d postgres
psql -qc "CREATE DATABASE inbound_rows" -d postgres
psql -q -d inbound_rows <<'SQL'
CREATE TABLE p (id bigint PRIMARY KEY, name varchar(200) NOT NULL, price_cents bigint NOT NULL);
CREATE TABLE cur (name varchar(50) PRIMARY KEY, page bigint NOT NULL);
INSERT INTO cur VALUES ('bare', 0);
CREATE TABLE inb (id bigserial PRIMARY KEY, source varchar(100) NOT NULL, remote_id varchar(255) NOT NULL,
  digest varchar(64) NOT NULL, state varchar(16) NOT NULL, deleted boolean NOT NULL DEFAULT false,
  modified_at bigint, payload text, error text, attempts int NOT NULL DEFAULT 0, next_retry_at bigint,
  seen_run bigint, updated_at bigint NOT NULL);
CREATE UNIQUE INDEX ux ON inb (source, remote_id);
CREATE INDEX iq ON inb (source, next_retry_at) WHERE state = 'quarantined';
CREATE TABLE small (sid int NOT NULL, remote_id varchar(255) NOT NULL, digest bytea NOT NULL,
  state smallint NOT NULL, modified_at bigint, PRIMARY KEY (sid, remote_id));
CREATE TABLE page (id bigserial PRIMARY KEY, sid int NOT NULL, ids text[] NOT NULL, digests bytea NOT NULL);
CREATE TABLE gin (id bigserial PRIMARY KEY, sid int NOT NULL, ids text[] NOT NULL, digests bytea NOT NULL);
CREATE INDEX gin_ids ON gin USING gin (ids);
SQL
page='\set s random(1, 100000000)
BEGIN;
INSERT INTO p SELECT g, '"'"'product '"'"' || g, g * 10 FROM generate_series(:s, :s + 199) g
  ON CONFLICT (id) DO UPDATE SET name = excluded.name, price_cents = excluded.price_cents;'
end='UPDATE cur SET page = :s WHERE name = '"'"'bare'"'"';
COMMIT;'
printf '%s\n%s\n' "$page" "$end" > "$dir/bare.sql"
printf '%s\n%s\n%s\n' "$page" "INSERT INTO inb (source, remote_id, digest, state, payload, updated_at)
  SELECT 'bench.products', g::text, md5(g::text) || md5(g::text), 'applied',
  '{\"id\":' || g || ',\"name\":\"product ' || g || '\",\"price_cents\":' || g * 10 || '}', 1
  FROM generate_series(:s, :s + 199) g ON CONFLICT (source, remote_id) DO UPDATE
  SET digest = excluded.digest, state = excluded.state, payload = excluded.payload, updated_at = excluded.updated_at;" "$end" > "$dir/rows.sql"
printf '%s\n%s\n%s\n' "$page" "INSERT INTO small (sid, remote_id, digest, state)
  SELECT 1, g::text, decode(md5(g::text), 'hex'), 0 FROM generate_series(:s, :s + 199) g
  ON CONFLICT (sid, remote_id) DO UPDATE SET digest = excluded.digest, state = excluded.state;" "$end" > "$dir/small.sql"
for t in page gin; do
  printf '%s\n%s\n%s\n' "$page" "INSERT INTO $t (sid, ids, digests)
  SELECT 1, array_agg(g::text), string_agg(decode(md5(g::text), 'hex'), ''::bytea)
  FROM generate_series(:s, :s + 199) g;" "$end" > "$dir/$t.sql"
done
for round in 1 2; do
  for f in bare rows small page gin; do
    printf 'postgres %-6s ' "$f"
    pgbench -n -M prepared -T 10 -f "$dir/$f.sql" inbound_rows 2>&1 | grep '^tps' | cut -d' ' -f3 | sed 's/$/ pages\/s/'
  done
done
psql -qc "DROP DATABASE inbound_rows" -d postgres

schema='PRAGMA journal_mode = wal; PRAGMA synchronous = normal;
CREATE TABLE p (id bigint PRIMARY KEY, name varchar(200) NOT NULL, price_cents bigint NOT NULL);
CREATE TABLE cur (page int); INSERT INTO cur VALUES (0);
CREATE TABLE inb (id integer PRIMARY KEY AUTOINCREMENT, source varchar(100) NOT NULL, remote_id varchar(255) NOT NULL,
  digest varchar(64) NOT NULL, state varchar(16) NOT NULL, deleted boolean NOT NULL DEFAULT false, modified_at bigint,
  payload text, error text, attempts int NOT NULL DEFAULT 0, next_retry_at bigint, seen_run bigint, updated_at bigint NOT NULL);
CREATE UNIQUE INDEX ux ON inb (source, remote_id);
CREATE TABLE small (sid int NOT NULL, remote_id varchar(255) NOT NULL, digest blob NOT NULL, state int NOT NULL,
  modified_at bigint, PRIMARY KEY (sid, remote_id)) WITHOUT ROWID;
CREATE TABLE page (id integer PRIMARY KEY, sid int NOT NULL, ids text NOT NULL, digests blob NOT NULL);'
for round in 1 2; do
  for f in bare rows small page; do
    rm -f "$dir/s.db"*
    sqlite3 "$dir/s.db" "$schema" > /dev/null
    for page in $(seq 0 99); do
      s=$((page * 200 + 1)); e=$((s + 199))
      echo "BEGIN;"
      echo "INSERT INTO p SELECT value, 'product ' || value, value * 10 FROM generate_series($s, $e) WHERE true ON CONFLICT (id) DO UPDATE SET name = excluded.name, price_cents = excluded.price_cents;"
      case $f in
        rows) echo "INSERT INTO inb (source, remote_id, digest, state, payload, updated_at) SELECT 'bench.products', value, hex(randomblob(32)), 'applied', json_object('id', value, 'name', 'product ' || value, 'price_cents', value * 10), 1 FROM generate_series($s, $e) WHERE true ON CONFLICT (source, remote_id) DO UPDATE SET digest = excluded.digest, state = excluded.state, payload = excluded.payload, updated_at = excluded.updated_at;" ;;
        page) echo "INSERT INTO page (sid, ids, digests) SELECT 1, json_group_array(CAST(value AS text)), randomblob(3200) FROM generate_series($s, $e) WHERE true;" ;;
        small) echo "INSERT INTO small (sid, remote_id, digest, state) SELECT 1, value, randomblob(16), 0 FROM generate_series($s, $e) WHERE true ON CONFLICT (sid, remote_id) DO UPDATE SET digest = excluded.digest, state = excluded.state;" ;;
      esac
      echo "UPDATE cur SET page = $page;"
      echo "COMMIT;"
    done > "$dir/q.sql"
    started=$(date +%s.%N)
    sqlite3 "$dir/s.db" < "$dir/q.sql"
    printf 'sqlite   %-6s %.3f s for 100 pages\n' "$f" "$(echo "$(date +%s.%N) - $started" | bc)"
  done
done
