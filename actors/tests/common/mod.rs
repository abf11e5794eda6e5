//! Shared by the actors' integration tests.

use backwaters_actors::node::NodeSettings;

/// A single node of cluster "test" in `dir`, no auto-create, fast retention checks.
pub fn settings(dir: &std::path::Path) -> NodeSettings {
    NodeSettings {
        node_id: 1,
        cluster_name: "test".into(),
        zone: "east".into(),
        data_dir: dir.to_path_buf(),
        auto_create_topics: false,
        default_partitions: 1,
        default_replication_factor: 1,
        retention_check_ms: 100,
        groups: Default::default(),
        raft_tick_ms: 100,
        members: vec![],
        leader_rebalance_ms: 10_000,
        metadata_checkpoint_records: 0,
        transactional_id_expiration_ms: backwaters_actors::txn::DEFAULT_ID_EXPIRATION_MS,
        min_free_disk_bytes: 0,
        store_cache_bytes: 256 << 20,
    }
}
