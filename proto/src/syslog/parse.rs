//! Syslog message parsing: RFC 5424 when the version field says so, RFC 3164 otherwise.
//!
//! RFC 3164 timestamps carry neither year nor zone; [`Rfc3164Rules`] makes both explicit:
//! the year is the receiver's, except that a date more than a week ahead of "now" is taken
//! to be from last year (December lines read in January), and the zone is a fixed offset.

use std::fmt;

/// Which format a message was read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Rfc5424,
    Rfc3164,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdElement {
    pub id: String,
    pub params: Vec<(String, String)>,
}

/// A parsed syslog message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogMessage {
    pub format: Format,
    pub facility: u8,
    pub severity: u8,
    /// UTC milliseconds since the epoch, when the message carried a time.
    pub timestamp_ms: Option<i64>,
    pub hostname: Option<String>,
    pub app_name: Option<String>,
    pub proc_id: Option<String>,
    pub msg_id: Option<String>,
    pub structured_data: Vec<SdElement>,
    pub message: String,
}

/// Why a line is not syslog (it is still stored, with this reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(why: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(why.into()))
}

/// How RFC 3164 timestamps are completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rfc3164Rules {
    /// A fixed year, or None: the receiver's year (with the rollover rule above).
    pub year: Option<i32>,
    /// Offset of the senders' clocks from UTC, in minutes.
    pub utc_offset_minutes: i32,
}

impl Default for Rfc3164Rules {
    fn default() -> Self {
        Rfc3164Rules { year: None, utc_offset_minutes: 0 }
    }
}

pub const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp", "ntp", "security", "console", "solaris-cron", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
];
pub const SEVERITIES: [&str; 8] = ["emergency", "alert", "critical", "error", "warning", "notice", "informational", "debug"];

/// Parses one message (without framing). `now_ms` completes RFC 3164 dates.
pub fn parse(line: &[u8], now_ms: i64, rules: &Rfc3164Rules) -> Result<SyslogMessage, ParseError> {
    let line = trim_end(line);
    let (pri, rest) = parse_pri(line)?;
    let (facility, severity) = ((pri / 8) as u8, (pri % 8) as u8);
    if rest.len() >= 2 && rest[0] == b'1' && rest[1] == b' ' {
        parse_5424(facility, severity, &rest[2..])
    } else {
        Ok(parse_3164(facility, severity, rest, now_ms, rules))
    }
}

fn trim_end(mut s: &[u8]) -> &[u8] {
    while let [head @ .., b'\n' | b'\r' | b'\0'] = s {
        s = head;
    }
    s
}

fn parse_pri(line: &[u8]) -> Result<(u16, &[u8]), ParseError> {
    if line.first() != Some(&b'<') {
        return err("no <PRI> at the start");
    }
    let close = line.iter().take(5).position(|b| *b == b'>').ok_or_else(|| ParseError("<PRI> is not closed within 3 digits".into()))?;
    let digits = &line[1..close];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) || (digits.len() > 1 && digits[0] == b'0') {
        return err("<PRI> is not a number");
    }
    let pri: u16 = std::str::from_utf8(digits).expect("digits").parse().expect("at most 3 digits");
    if pri > 191 {
        return err(format!("<PRI> {pri} is above 191"));
    }
    Ok((pri, &line[close + 1..]))
}

/// Splits at the first space: (field, rest).
fn field(s: &[u8]) -> (&[u8], &[u8]) {
    match s.iter().position(|b| *b == b' ') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, &[]),
    }
}

fn nil_or(s: &[u8]) -> Option<String> {
    (s != b"-" && !s.is_empty()).then(|| String::from_utf8_lossy(s).into_owned())
}

fn text(s: &[u8]) -> String {
    let s = s.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(s);
    String::from_utf8_lossy(s).into_owned()
}

fn parse_5424(facility: u8, severity: u8, s: &[u8]) -> Result<SyslogMessage, ParseError> {
    let (ts, s) = field(s);
    let timestamp_ms = if ts == b"-" { None } else { Some(parse_rfc3339(ts)?) };
    let (host, s) = field(s);
    let (app, s) = field(s);
    let (proc_id, s) = field(s);
    let (msg_id, s) = field(s);
    if host.len() > 255 || app.len() > 48 || proc_id.len() > 128 || msg_id.len() > 32 {
        return err("RFC 5424 header field longer than allowed");
    }
    let (structured_data, s) = parse_sd(s)?;
    let s = s.strip_prefix(b" ").unwrap_or(s);
    Ok(SyslogMessage {
        format: Format::Rfc5424,
        facility,
        severity,
        timestamp_ms,
        hostname: nil_or(host),
        app_name: nil_or(app),
        proc_id: nil_or(proc_id),
        msg_id: nil_or(msg_id),
        structured_data,
        message: text(s),
    })
}

fn parse_sd(s: &[u8]) -> Result<(Vec<SdElement>, &[u8]), ParseError> {
    if let Some(rest) = s.strip_prefix(b"-") {
        return Ok((vec![], rest));
    }
    let mut out = Vec::new();
    let mut i = 0;
    while s.get(i) == Some(&b'[') {
        i += 1;
        let id_end = s[i..].iter().position(|b| *b == b' ' || *b == b']').map(|p| i + p).ok_or_else(|| ParseError("structured data element is not closed".into()))?;
        let id = String::from_utf8_lossy(&s[i..id_end]).into_owned();
        if id.is_empty() {
            return err("structured data element without an id");
        }
        i = id_end;
        let mut params = Vec::new();
        while s.get(i) == Some(&b' ') {
            i += 1;
            let eq = s[i..].iter().position(|b| *b == b'=').map(|p| i + p).ok_or_else(|| ParseError("structured data parameter without '='".into()))?;
            let name = String::from_utf8_lossy(&s[i..eq]).into_owned();
            i = eq + 1;
            if s.get(i) != Some(&b'"') {
                return err("structured data value is not quoted");
            }
            i += 1;
            let mut value = Vec::new();
            loop {
                match s.get(i) {
                    None => return err("structured data value is not closed"),
                    Some(b'\\') if matches!(s.get(i + 1), Some(b'"' | b'\\' | b']')) => {
                        value.push(s[i + 1]);
                        i += 2;
                    }
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b) => {
                        value.push(*b);
                        i += 1;
                    }
                }
            }
            params.push((name, String::from_utf8_lossy(&value).into_owned()));
        }
        if s.get(i) != Some(&b']') {
            return err("structured data element is not closed");
        }
        i += 1;
        out.push(SdElement { id, params });
    }
    if out.is_empty() {
        return err("structured data is neither '-' nor [..]");
    }
    Ok((out, &s[i..]))
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)` to UTC ms.
pub fn parse_rfc3339(ts: &[u8]) -> Result<i64, ParseError> {
    let bad = || ParseError(format!("timestamp {:?} is not RFC 3339", String::from_utf8_lossy(ts)));
    let num = |a: usize, b: usize| -> Result<i64, ParseError> {
        let d = ts.get(a..b).ok_or_else(bad)?;
        if !d.iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        Ok(std::str::from_utf8(d).expect("digits").parse::<i64>().expect("digits"))
    };
    if ts.len() < 20 || ts[4] != b'-' || ts[7] != b'-' || !matches!(ts[10], b'T' | b't') || ts[13] != b':' || ts[16] != b':' {
        return Err(bad());
    }
    let (y, mo, d, h, mi, s) = (num(0, 4)?, num(5, 7)?, num(8, 10)?, num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return Err(bad());
    }
    let mut i = 19;
    let mut ms = 0;
    if ts.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while ts.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start || i - start > 9 {
            return Err(bad());
        }
        let frac = num(start, (start + 3).min(i))?;
        ms = frac * 10i64.pow((3 - (i - start).min(3)) as u32);
    }
    let offset_min = match ts.get(i) {
        Some(b'Z' | b'z') if ts.len() == i + 1 => 0,
        Some(sign @ (b'+' | b'-')) if ts.len() == i + 6 && ts[i + 3] == b':' => {
            let (oh, om) = (num(i + 1, i + 3)?, num(i + 4, i + 6)?);
            if oh > 23 || om > 59 {
                return Err(bad());
            }
            let m = oh * 60 + om;
            if *sign == b'+' { m } else { -m }
        }
        _ => return Err(bad()),
    };
    let days = days_from_civil(y, mo, d);
    Ok(((days * 86_400 + h * 3_600 + mi * 60 + s.min(59)) - offset_min * 60) * 1_000 + ms)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

const MONTHS: [&[u8; 3]; 12] = [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];

/// `Mmm dd hh:mm:ss` (day space-padded) at the start of `s`: (ms, rest).
fn parse_3164_time(s: &[u8], now_ms: i64, rules: &Rfc3164Rules) -> Option<(i64, usize)> {
    if s.len() < 15 || s[3] != b' ' || s[6] != b' ' || s[9] != b':' || s[12] != b':' {
        return None;
    }
    let month = MONTHS.iter().position(|m| &s[..3] == *m)? as i64 + 1;
    let digit = |b: u8| b.is_ascii_digit().then(|| (b - b'0') as i64);
    let day = match (s[4], s[5]) {
        (b' ', d) => digit(d)?,
        (a, b) => digit(a)? * 10 + digit(b)?,
    };
    let two = |i: usize| Some(digit(s[i])? * 10 + digit(s[i + 1])?);
    let (h, mi, sec) = (two(7)?, two(10)?, two(13)?);
    if !(1..=31).contains(&day) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let local_now = now_ms + rules.utc_offset_minutes as i64 * 60_000;
    let this_year = civil_from_days(local_now.div_euclid(86_400_000)).0;
    let at = |y: i64| (days_from_civil(y, month, day) * 86_400 + h * 3_600 + mi * 60 + sec.min(59)) * 1_000 - rules.utc_offset_minutes as i64 * 60_000;
    let ms = match rules.year {
        Some(y) => at(y as i64),
        // More than a week in the future: last year's line (read just after New Year).
        None if at(this_year) > now_ms + 7 * 86_400_000 => at(this_year - 1),
        None => at(this_year),
    };
    Some((ms, 15))
}

fn parse_3164(facility: u8, severity: u8, s: &[u8], now_ms: i64, rules: &Rfc3164Rules) -> SyslogMessage {
    let (timestamp_ms, mut s) = match parse_3164_time(s, now_ms, rules) {
        Some((ms, n)) => (Some(ms), s[n..].strip_prefix(b" ").unwrap_or(&s[n..])),
        // rsyslog's forwarding format: an RFC 3339 time where RFC 3164 has its own.
        None => match field(s) {
            (ts, rest) if ts.first().is_some_and(u8::is_ascii_digit) => match parse_rfc3339(ts) {
                Ok(ms) => (Some(ms), rest),
                Err(_) => (None, s),
            },
            _ => (None, s),
        },
    };
    // HOSTNAME, unless the first word is already the tag ("sshd[1]:" / "sshd:").
    let mut hostname = None;
    let (first, rest) = field(s);
    let is_tag = |w: &[u8]| w.ends_with(b":") || w.contains(&b'[');
    if timestamp_ms.is_some() && !first.is_empty() && !is_tag(first) && !rest.is_empty() {
        hostname = Some(String::from_utf8_lossy(first).into_owned());
        s = rest;
    }
    // TAG: up to 48 alphanumerics (and -_./), then "[pid]" and/or ":".
    let tag_len = s.iter().take(48).position(|b| !(b.is_ascii_alphanumeric() || b"-_./".contains(b))).unwrap_or(s.len().min(48));
    let (mut app_name, mut proc_id) = (None, None);
    let mut rest = s;
    if tag_len > 0 {
        let after = &s[tag_len..];
        let (pid, after) = match after.strip_prefix(b"[") {
            Some(a) => match a.iter().position(|b| *b == b']') {
                Some(end) => (Some(String::from_utf8_lossy(&a[..end]).into_owned()), &a[end + 1..]),
                None => (None, after),
            },
            None => (None, after),
        };
        if let Some(a) = after.strip_prefix(b":") {
            app_name = Some(String::from_utf8_lossy(&s[..tag_len]).into_owned());
            proc_id = pid;
            rest = a.strip_prefix(b" ").unwrap_or(a);
        }
    }
    SyslogMessage { format: Format::Rfc3164, facility, severity, timestamp_ms, hostname, app_name, proc_id, msg_id: None, structured_data: vec![], message: text(rest) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-28T12:00:00Z
    const NOV_28_2026: i64 = 1_795_867_200_000;

    #[test]
    fn the_constant_is_noon() {
        assert_eq!(days_from_civil(2026, 11, 28) * 86_400_000 + 12 * 3_600_000, NOV_28_2026);
    }

    #[test]
    fn rfc5424_with_structured_data() {
        let m = parse(br#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Appl\"ication" eventID="1011"][x@1] BOMAn application event"#, 0, &Rfc3164Rules::default()).unwrap();
        assert_eq!((m.facility, m.severity), (20, 5));
        assert_eq!(m.timestamp_ms, Some(1_065_910_455_003));
        assert_eq!(m.hostname.as_deref(), Some("mymachine.example.com"));
        assert_eq!(m.app_name.as_deref(), Some("evntslog"));
        assert_eq!(m.proc_id, None);
        assert_eq!(m.msg_id.as_deref(), Some("ID47"));
        assert_eq!(m.structured_data.len(), 2);
        assert_eq!(m.structured_data[0].params[1], ("eventSource".into(), "Appl\"ication".into()));
        assert_eq!(m.message, "BOMAn application event");
        let m = parse(b"<34>1 2003-10-11T22:14:15.003-07:00 host su 77 - - \xEF\xBB\xBF'su root' failed", 0, &Rfc3164Rules::default()).unwrap();
        assert_eq!(m.timestamp_ms, Some(1_065_935_655_003));
        assert_eq!(m.proc_id.as_deref(), Some("77"));
        assert_eq!(m.message, "'su root' failed");
    }

    #[test]
    fn rfc3164_year_and_zone_rules() {
        let r = Rfc3164Rules::default();
        let m = parse(b"<38>Nov 28 11:59:00 web1 sshd[4242]: Accepted publickey for alice\n", NOV_28_2026, &r).unwrap();
        assert_eq!(m.format, Format::Rfc3164);
        assert_eq!((m.facility, m.severity), (4, 6));
        assert_eq!(m.timestamp_ms, Some(NOV_28_2026 - 60_000));
        assert_eq!((m.hostname.as_deref(), m.app_name.as_deref(), m.proc_id.as_deref()), (Some("web1"), Some("sshd"), Some("4242")));
        assert_eq!(m.message, "Accepted publickey for alice");
        // A December line read on January 2nd is last year's.
        let jan2 = days_from_civil(2027, 1, 2) * 86_400_000;
        let m = parse(b"<13>Dec 31 23:00:00 h app: x", jan2, &r).unwrap();
        assert_eq!(m.timestamp_ms, Some(days_from_civil(2026, 12, 31) * 86_400_000 + 23 * 3_600_000));
        // Senders on UTC+01:00 and a fixed year.
        let m = parse(b"<13>Feb  3 10:00:00 h app: x", 0, &Rfc3164Rules { year: Some(2020), utc_offset_minutes: 60 }).unwrap();
        assert_eq!(m.timestamp_ms, Some(days_from_civil(2020, 2, 3) * 86_400_000 + 9 * 3_600_000));
        // rsyslog's forwarding template: RFC 3339 time in an RFC 3164 line.
        let m = parse(b"<13>2026-11-28T13:58:26.393940+00:00 vm relpapp: relp line 1", 0, &r).unwrap();
        assert_eq!((m.timestamp_ms, m.hostname.as_deref(), m.app_name.as_deref(), m.message.as_str()), (Some(1_795_874_306_393), Some("vm"), Some("relpapp"), "relp line 1"));
        // No hostname: the first word is the tag.
        let m = parse(b"<13>Nov 28 11:59:00 sudo: root : TTY=pts/0", NOV_28_2026, &r).unwrap();
        assert_eq!((m.hostname, m.app_name.as_deref(), m.message.as_str()), (None, Some("sudo"), "root : TTY=pts/0"));
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        for bad in [&b""[..], b"hello", b"<", b"<999>x", b"<1a>x", b"<013>x", b"<13>1 2003-13-01T00:00:00Z h a p m - x", b"<13>1 - h a p m [unterminated"] {
            assert!(parse(bad, 0, &Rfc3164Rules::default()).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        // A PRI with anything after it is at least RFC 3164 text.
        assert_eq!(parse(b"<13>\xff\xfe binary", 0, &Rfc3164Rules::default()).unwrap().message, "\u{fffd}\u{fffd} binary");
    }

    #[test]
    fn civil_round_trip() {
        for d in [-800_000, -1, 0, 1, 59, 365, 10_957, 20_000, 2_000_000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }
}
