//! The per-attempt trace: one CSV row per request attempt, written straight into a reused
//! buffer. Every field is a number or a fixed name, so nothing needs quoting.

use std::io::{self, Write};

/// The trace's columns.
pub const TRACE_HEADER: [&str; 11] = [
    "t_ms",
    "user",
    "module",
    "endpoint",
    "proxy",
    "ip",
    "attempt",
    "outcome",
    "status",
    "latency_ms",
    "wait_ms",
];

/// One attempt.
pub(crate) struct Row<'a> {
    pub(crate) t_ms: u64,
    pub(crate) user: u32,
    pub(crate) module: &'a str,
    pub(crate) endpoint: &'a str,
    pub(crate) proxy: u32,
    pub(crate) ip: u32,
    pub(crate) attempt: u32,
    pub(crate) outcome: &'a str,
    pub(crate) status: &'a str,
    pub(crate) latency_ms: u64,
    pub(crate) wait_ms: u64,
}

pub(crate) struct TraceWriter<'o> {
    out: &'o mut dyn Write,
    buf: Vec<u8>,
}

fn push_u64(buf: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

impl<'o> TraceWriter<'o> {
    pub(crate) fn new(out: &'o mut dyn Write) -> Self {
        let mut w = TraceWriter { out, buf: Vec::with_capacity(1 << 16) };
        w.buf.extend_from_slice(TRACE_HEADER.join(",").as_bytes());
        w.buf.push(b'\n');
        w
    }

    pub(crate) fn row(&mut self, r: &Row<'_>) -> io::Result<()> {
        let b = &mut self.buf;
        push_u64(b, r.t_ms);
        b.push(b',');
        push_u64(b, u64::from(r.user));
        b.push(b',');
        b.extend_from_slice(r.module.as_bytes());
        b.push(b',');
        b.extend_from_slice(r.endpoint.as_bytes());
        b.push(b',');
        push_u64(b, u64::from(r.proxy));
        b.push(b',');
        for (i, octet) in r.ip.to_be_bytes().iter().enumerate() {
            if i > 0 {
                b.push(b'.');
            }
            push_u64(b, u64::from(*octet));
        }
        b.push(b',');
        push_u64(b, u64::from(r.attempt));
        b.push(b',');
        b.extend_from_slice(r.outcome.as_bytes());
        b.push(b',');
        b.extend_from_slice(r.status.as_bytes());
        b.push(b',');
        push_u64(b, r.latency_ms);
        b.push(b',');
        push_u64(b, r.wait_ms);
        b.push(b'\n');
        if self.buf.len() >= 1 << 16 {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_plain_csv() {
        let mut out = Vec::new();
        let mut w = TraceWriter::new(&mut out);
        let row = Row {
            t_ms: 1_234,
            user: 3,
            module: "orders",
            endpoint: "order_entries",
            proxy: 70,
            ip: u32::from_be_bytes([10, 0, 1, 7]),
            attempt: 0,
            outcome: "ok",
            status: "200",
            latency_ms: 0,
            wait_ms: 18_446_744_073_709_551_615,
        };
        w.row(&row).unwrap();
        w.flush().unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "t_ms,user,module,endpoint,proxy,ip,attempt,outcome,status,latency_ms,wait_ms\n\
             1234,3,orders,order_entries,70,10.0.1.7,0,ok,200,0,18446744073709551615\n"
        );
    }
}
