-- flowscope flow records in ClickHouse, one server (docs/clickhouse.md).
-- Works on ClickHouse 18.16 (Debian 12's clickhouse-server) and on current releases:
-- times are UInt64 nanoseconds since the epoch, addresses FixedString(16) (IPv4 mapped
-- into IPv6, ::ffff:a.b.c.d: IPv6NumToString() shows both).  record --flow-export
-- clickhouse://HOST:8123/flowscope.flows writes the flows table and flows_counters.

CREATE DATABASE IF NOT EXISTS flowscope;

-- one row per flow per segment, as the archive's index holds it
CREATE TABLE IF NOT EXISTS flowscope.flows (
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
CREATE TABLE IF NOT EXISTS flowscope.flows_counters (
    sensor String,
    ts_ns UInt64,
    name String,
    value UInt64
) ENGINE = MergeTree
PARTITION BY intDiv(ts_ns, 86400000000000)
ORDER BY (sensor, name, ts_ns);
