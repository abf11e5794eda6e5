//! The short chaos run CI does: three node processes, about two minutes, at least 10 SIGKILLs
//! (leader and controller kills among them) under continuous idempotent acks=all load and a
//! transactional producer; the checker must find nothing (transactions all or nothing under
//! read_committed included). `BACKWATERS_CHAOS_SEED` replays a seed. The nodes talk over TLS
//! (`[tls]`): reconnecting to a restarted peer goes through the TLS handshakes, which the rest
//! of the suite only sees on a quiet cluster (plaintext kills are in tests/tests/cluster.rs).

use backwaters_chaos::run::{run, Options};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn short_chaos_run_loses_nothing() {
    let seed = std::env::var("BACKWATERS_CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(7);
    let out = tempfile::tempdir().unwrap();
    let opts = Options {
        nodes: 3,
        duration: Duration::from_secs(80),
        min_kills: 10,
        seed,
        partitions: 4,
        producers: 2,
        fault_every: Duration::from_secs(3),
        out: out.path().to_path_buf(),
        tls: true,
        txn_producers: 1,
        faults: vec![],
    };
    let o = run(opts).await.expect("chaos run");
    eprintln!("seed {seed}: {} faults, {} kills, {} client epoch bumps, {} client fatal errors\n{}", o.faults, o.kills, o.epoch_bumps, o.fatal_errors, o.report.table());
    for f in &o.report.findings {
        eprintln!("FAIL {}: {}\n  window: {:?}", f.kind, f.detail, f.window);
    }
    assert!(o.kills >= 10, "only {} kills", o.kills);
    assert!(o.report.acknowledged > 1000, "only {} records acknowledged: the workload barely ran", o.report.acknowledged);
    assert!(o.report.txn_committed > 10, "only {} transactions committed: the transactional workload barely ran", o.report.txn_committed);
    if !o.report.ok() || o.fatal_errors > 0 {
        // Keep the folder: history, report, node logs and the producers' librdkafka logs.
        let kept = out.keep();
        panic!("seed {seed}: the checker found {} problems, producers hit {} fatal errors (history, report and logs kept in {})", o.report.findings.len(), o.fatal_errors, kept.display());
    }
}
