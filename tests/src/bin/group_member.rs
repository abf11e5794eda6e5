//! A consumer-group member as its own process (tests SIGKILL it: no LeaveGroup).
//! Usage: group_member BOOTSTRAP GROUP TOPIC STRATEGY
//! Prints `ASSIGNED 0,1` on every assignment change and `REC partition offset value` per
//! record, before committing it.

use backwaters_tests::member::{consumer_config, run, Event};
use std::io::Write;
use std::sync::atomic::AtomicBool;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, group, topic, strategy] = args.as_slice() else {
        eprintln!("usage: group_member BOOTSTRAP GROUP TOPIC STRATEGY");
        std::process::exit(2);
    };
    let stop = AtomicBool::new(false);
    let mut out = std::io::stdout().lock();
    run(consumer_config(bootstrap, group, strategy), topic, &stop, |e| {
        let line = match e {
            Event::Assigned(p) => format!("ASSIGNED {}", p.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(",")),
            Event::Record { partition, offset, value } => format!("REC {partition} {offset} {value}"),
        };
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    });
}
