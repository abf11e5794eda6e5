//! Partition Raft groups in the deterministic simulation: random cuts, isolations, reorders,
//! drops, slow disks, clock jumps (tick bursts), crashes that lose unflushed writes, and
//! restarts; committed entries are never lost or reordered and replicas never diverge. `BACKWATERS_SEED=N` replays one seed; `BACKWATERS_SEEDS=N` runs N seeds.

use backwaters_actors::replica::sim::SimCluster;

fn run(seed: u64, replicas: u64, steps: usize) -> usize {
    let mut c = SimCluster::new(seed, replicas);
    for step in 0..steps {
        if let Err(e) = c.step() {
            panic!("{e} at step {step}; replay with BACKWATERS_SEED={seed}; faults: {:?}", c.log);
        }
    }
    if let Err(e) = c.settle() {
        panic!("{e}; replay with BACKWATERS_SEED={seed}; faults: {:?}", c.log);
    }
    c.committed.len()
}

#[test]
fn committed_entries_survive_random_faults() {
    let seeds: Vec<u64> = match std::env::var("BACKWATERS_SEED") {
        Ok(s) => vec![s.parse().expect("BACKWATERS_SEED is a number")],
        Err(_) => (1..=std::env::var("BACKWATERS_SEEDS").ok().and_then(|n| n.parse().ok()).unwrap_or(40)).collect(),
    };
    let mut total = 0;
    let runs = seeds.len();
    for seed in seeds {
        eprintln!("seed {seed}");
        let replicas = if seed % 4 == 0 { 5 } else { 3 };
        let committed = run(seed, replicas, 4_000);
        // Settling always commits something; a seed whose faults left no leader for long
        // commits little, but the run as a whole must.
        assert!(committed >= 1, "seed {seed}: nothing committed even after healing");
        total += committed;
    }
    eprintln!("{total} entries committed and checked");
    assert!(total >= 20 * runs, "only {total} entries committed over {runs} seeds: the simulation barely made progress");
}

/// Seeds (of `seeds`) in which the checker, or raft-rs itself on a torn log, notices the
/// fault `break_replica` injects into `replicas`.
fn seeds_catching(seeds: u64, replicas: &[u64], break_replica: impl Fn(&mut SimCluster, u64) + std::panic::RefUnwindSafe) -> usize {
    let mut caught = 0;
    for seed in 1..=seeds {
        let detected = std::panic::catch_unwind(|| {
            let mut c = SimCluster::new(seed, 3);
            for id in replicas {
                break_replica(&mut c, *id);
            }
            for _ in 0..4_000 {
                if c.step().is_err() {
                    return true;
                }
            }
            c.settle().is_err()
        })
        .unwrap_or(true);
        if detected {
            caught += 1;
        }
    }
    caught
}

/// The checker is not blind: replicas whose disks acknowledge without storing lose committed
/// entries across crashes, and some seed shows it.
#[test]
fn the_checker_catches_lying_disks() {
    let caught = seeds_catching(20, &[1, 2], |c, id| c.lie(id));
    assert!(caught > 0, "no seed detected lost writes from lying disks");
    eprintln!("{caught} of 20 seeds caught the lying disks");
}

/// Nor blind to answers sent before the flush: a replica that acknowledges an append as soon
/// as it is written (not yet durable) loses it in a crash while the leader counted it. It
/// takes a majority crashing within one flush, so few seeds show it.
#[test]
fn the_checker_catches_acks_before_the_flush() {
    let caught = seeds_catching(100, &[1, 2, 3], |c, id| c.ack_early(id));
    assert!(caught > 0, "no seed detected acknowledgements sent before the flush");
    eprintln!("{caught} of 100 seeds caught the early acknowledgements");
}
