//! Partition Raft groups in the deterministic simulation: random cuts, isolations, reorders,
//! drops, crashes and restarts; committed entries are never lost or reordered and replicas
//! never diverge. `BACKWATERS_SEED=N` replays one seed; `BACKWATERS_SEEDS=N` runs N seeds.

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

/// The checker is not blind: replicas whose disks acknowledge without storing lose committed
/// entries across crashes, and some seed shows it.
#[test]
fn the_checker_catches_lying_disks() {
    let mut caught = 0;
    for seed in 1..=20u64 {
        // Either the checker reports the loss, or raft-rs itself panics on the torn log.
        let detected = std::panic::catch_unwind(|| {
            let mut c = SimCluster::new(seed, 3);
            c.lie(1);
            c.lie(2);
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
    assert!(caught > 0, "no seed detected lost writes from lying disks");
    eprintln!("{caught} of 20 seeds caught the lying disks");
}
