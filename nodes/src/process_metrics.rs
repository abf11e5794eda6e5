//! The standard Prometheus process metrics (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, ...) and the node's own disk traffic, read from `/proc/self`
//! at scrape time.
//!
//! Why the disk counters: sled is log-structured and rewrites whole B-tree nodes (a leaf of up
//! to 16 entries) on splits, consolidations and segment cleaning, so a node writes several
//! times the record bytes it stores. `backwaters_process_disk_write_bytes_total` next to the
//! replicated record bytes shows that amplification on a live node, and a memory or CPU
//! climb shows up in the process gauges before it shows up as produce latency.
//!
//! Parsing is separate from reading (plain functions over the files' text) so it is tested
//! without a `/proc`. Off Linux nothing is rendered.

use std::fmt::Write;

/// What one scrape read about this process.
#[derive(Debug, Default, PartialEq)]
pub struct Reading {
    pub cpu_ticks: Option<u64>,
    pub start_ticks: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub resident_bytes: Option<u64>,
    pub threads: Option<u64>,
    pub disk_read_bytes: Option<u64>,
    pub disk_write_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
}

/// utime + stime, starttime (clock ticks) and vsize (bytes) from `/proc/self/stat`. The
/// command name (field 2) is in parentheses and may hold spaces or ')', so fields are
/// counted from the last ')'.
pub fn parse_stat(text: &str) -> Option<(u64, u64, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name, field 3 (state) is f[0]: utime is field 14, stime 15, starttime 22,
    // vsize 23.
    let num = |i: usize| f.get(i - 3)?.parse::<u64>().ok();
    Some((num(14)? + num(15)?, num(22)?, num(23)?))
}

/// The value of `key` (e.g. "VmRSS:" in status, "write_bytes:" in io), times `unit`.
pub fn parse_field(text: &str, key: &str, unit: u64) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse::<u64>().ok().map(|v| v * unit)
}

/// The soft limit of "Max open files" in `/proc/self/limits`.
pub fn parse_max_fds(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

/// Reads this process's numbers (whatever `/proc` offers; missing files leave `None`).
pub fn read() -> Reading {
    let file = |p: &str| std::fs::read_to_string(p).ok();
    let mut r = Reading::default();
    if let Some((cpu, start, vsize)) = file("/proc/self/stat").as_deref().and_then(parse_stat) {
        r.cpu_ticks = Some(cpu);
        r.start_ticks = Some(start);
        r.virtual_bytes = Some(vsize);
    }
    if let Some(s) = file("/proc/self/status") {
        r.resident_bytes = parse_field(&s, "VmRSS:", 1024);
        r.threads = parse_field(&s, "Threads:", 1);
    }
    if let Some(s) = file("/proc/self/io") {
        r.disk_read_bytes = parse_field(&s, "read_bytes:", 1);
        r.disk_write_bytes = parse_field(&s, "write_bytes:", 1);
    }
    r.open_fds = std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as u64);
    r.max_fds = file("/proc/self/limits").as_deref().and_then(parse_max_fds);
    r
}

/// Clock ticks per second for `/proc/self/stat`'s times, and the second since the epoch at
/// which the system booted (`btime` in `/proc/stat`): constants, read at the first scrape.
fn clock() -> (u64, Option<u64>) {
    static CLOCK: std::sync::OnceLock<(u64, Option<u64>)> = std::sync::OnceLock::new();
    *CLOCK.get_or_init(|| {
        // SAFETY: sysconf reads a constant and touches no memory of ours.
        let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| parse_field(&s, "btime", 1));
        (if t > 0 { t as u64 } else { 100 }, boot)
    })
}

/// Appends the metrics of `r` in the Prometheus text format.
pub fn render_reading(out: &mut String, r: &Reading, ticks_per_second: u64, boot_time: Option<u64>) {
    let mut one = |name: &str, kind: &str, help: &str, v: Option<f64>| {
        if let Some(v) = v {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        }
    };
    let tps = ticks_per_second.max(1) as f64;
    one("process_cpu_seconds_total", "counter", "User and system CPU time spent in seconds", r.cpu_ticks.map(|t| t as f64 / tps));
    one(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since the Unix epoch in seconds",
        r.start_ticks.zip(boot_time).map(|(t, b)| b as f64 + t as f64 / tps),
    );
    one("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes", r.virtual_bytes.map(|v| v as f64));
    one("process_resident_memory_bytes", "gauge", "Resident memory size in bytes", r.resident_bytes.map(|v| v as f64));
    one("process_threads", "gauge", "Number of OS threads in the process", r.threads.map(|v| v as f64));
    one("process_open_fds", "gauge", "Number of open file descriptors", r.open_fds.map(|v| v as f64));
    one("process_max_fds", "gauge", "Maximum number of open file descriptors", r.max_fds.map(|v| v as f64));
    one(
        "backwaters_process_disk_read_bytes_total",
        "counter",
        "Bytes this node process caused to be read from storage (page-cache misses)",
        r.disk_read_bytes.map(|v| v as f64),
    );
    one(
        "backwaters_process_disk_write_bytes_total",
        "counter",
        "Bytes this node process caused to be written to storage (sled's log, with its rewrites)",
        r.disk_write_bytes.map(|v| v as f64),
    );
}

/// Appends this process's metrics (nothing off Linux).
pub fn render(out: &mut String) {
    if cfg!(target_os = "linux") {
        let (ticks_per_second, boot_time) = clock();
        render_reading(out, &read(), ticks_per_second, boot_time);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        // A command name with a space and a ')' in it must not shift the fields.
        let stat = "4242 (bw) node) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 12345 3141176000 290000 18446744073709551615";
        assert_eq!(parse_stat(stat), Some((300, 12345, 3_141_176_000)));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1 2"), None);
    }

    #[test]
    fn status_io_and_limits_fields() {
        let status = "Name:\tbackwaters\nVmRSS:\t  1048576 kB\nThreads:\t23\n";
        assert_eq!(parse_field(status, "VmRSS:", 1024), Some(1 << 30));
        assert_eq!(parse_field(status, "Threads:", 1), Some(23));
        assert_eq!(parse_field(status, "VmSwap:", 1024), None);
        let io = "rchar: 10\nwchar: 20\nsyscr: 1\nsyscw: 2\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n";
        assert_eq!(parse_field(io, "read_bytes:", 1), Some(4096));
        assert_eq!(parse_field(io, "write_bytes:", 1), Some(8192));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        assert_eq!(parse_max_fds(limits), Some(1024));
    }

    #[test]
    fn renders_what_was_read_and_skips_what_was_not() {
        let r = Reading { cpu_ticks: Some(250), start_ticks: Some(1000), resident_bytes: Some(4096), ..Reading::default() };
        let mut s = String::new();
        render_reading(&mut s, &r, 100, Some(1_700_000_000));
        assert!(s.contains("# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 2.5\n"), "{s}");
        assert!(s.contains("process_start_time_seconds 1700000010\n"), "{s}");
        assert!(s.contains("process_resident_memory_bytes 4096\n"), "{s}");
        assert!(!s.contains("process_open_fds"), "{s}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let r = read();
        assert!(r.resident_bytes.unwrap() > 0);
        assert!(r.threads.unwrap() >= 1);
        assert!(r.open_fds.unwrap() >= 3);
        assert!(r.cpu_ticks.is_some() && r.max_fds.is_some());
    }
}
