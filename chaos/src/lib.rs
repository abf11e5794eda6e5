//! Chaos runs against Backwaters clusters (workload, nemesis, history checker).
//!
//! # Layout
//! Nothing yet: this crate is reserved for the chaos suite, which needs the replicated
//! three-zone cluster. See `README.md` beside this file.
