//! Syslog and RELP on the wire, sans-io.
//!
//! # Layout
//! - [`parse`]: one syslog message (RFC 5424, or RFC 3164 with explicit year and time-zone
//!   rules) into fields; never panics, and a line that does not parse is an error the caller
//!   still stores.
//! - [`framing`]: the TCP/TLS stream framer of RFC 6587 (octet counting and LF-terminated,
//!   told apart per frame as rsyslog does), with a size limit checked before buffering.
//! - [`relp`]: RELP frames (rsyslog's reliable protocol: `TXNR COMMAND LEN DATA\n`).
//! - [`ecs`]: a parsed message as a JSON record with ECS field names.

pub mod ecs;
pub mod framing;
pub mod parse;
pub mod relp;
