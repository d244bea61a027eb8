-- flowscope flow records in ClickHouse over shards (docs/clickhouse.md): run on every
-- server of the cluster (here `flowscope_test`: name yours, as in remote_servers).  Each
-- shard stores rows in flows_local, recorders insert into, and users read from, the
-- Distributed tables flows and flows_counters, which spread rows by sensor (a sensor's rows
-- on one shard) and ask every shard.  record --flow-export asks for synchronous inserts
-- (insert_distributed_sync=1), so its check of what a table holds sees what it sent.

CREATE DATABASE IF NOT EXISTS flowscope_dist;

-- one row per flow per segment, as the archive's index holds it
CREATE TABLE IF NOT EXISTS flowscope_dist.flows_local (
    sensor String,
    segment UInt64,
    segment_created_ns UInt64,
    seq UInt32,
    first_ns UInt64,
    last_ns UInt64,
    proto UInt8,
    addr_a FixedString(16),
    port_a UInt16,
    addr_b FixedString(16),
    port_b UInt16,
    vlan UInt16,
    vlan_inner UInt16,
    packets_ab UInt64,
    packets_ba UInt64,
    bytes_ab UInt64,
    bytes_ba UInt64,
    tcp_flags_ab UInt8,
    tcp_flags_ba UInt8,
    trigger String,
    reason String
) ENGINE = ReplacingMergeTree
PARTITION BY intDiv(first_ns, 86400000000000)
ORDER BY (sensor, segment, segment_created_ns, seq);

-- the recorder's counters (docs/counters.md), a row per counter every --flow-export-interval
CREATE TABLE IF NOT EXISTS flowscope_dist.flows_counters_local (
    sensor String,
    ts_ns UInt64,
    name String,
    value UInt64
) ENGINE = MergeTree
PARTITION BY intDiv(ts_ns, 86400000000000)
ORDER BY (sensor, name, ts_ns);

CREATE TABLE IF NOT EXISTS flowscope_dist.flows AS flowscope_dist.flows_local
    ENGINE = Distributed(flowscope_test, flowscope_dist, flows_local, cityHash64(sensor));

CREATE TABLE IF NOT EXISTS flowscope_dist.flows_counters AS flowscope_dist.flows_counters_local
    ENGINE = Distributed(flowscope_test, flowscope_dist, flows_counters_local, cityHash64(sensor));
