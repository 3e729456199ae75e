//! What the TCP sockets connected to one peer have put on the wire, from the kernel's own
//! counters: `ss -tinH dst PEER` (iproute2, which reads them over netlink `INET_DIAG`; this
//! project forbids `unsafe`, so no direct `getsockopt(TCP_INFO)`). `profile --role cloud` reads
//! them around a run of real requests to a loopback server it started on a fresh port, to
//! measure the transport's overhead per image (`wire_overhead_bytes`, issue 14: Algorithm 1's
//! `TU` counts the bytes that really leave the phone, DESIGN §1).
//!
//! Invariant: `wire_bytes = payload_bytes + segments × header_bytes`, where `payload_bytes` is
//! `bytes_sent` (TCP payload: TLS records and HTTP/2 frames included, retransmissions too) and
//! `segments` is `segs_out` (every segment sent, pure ACKs included). `header_bytes` is one
//! Ethernet frame header (14) + IP (20 for IPv4, 40 for IPv6) + TCP (20, +12 when the
//! connection negotiated timestamps): what a veth or an Ethernet NIC counts per packet, as
//! `scripts/netem.sh` does at the phone's interface. A phone's radio adds its own link layer,
//! which neither counts.

use std::net::SocketAddr;

/// Sums over the sockets connected to one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpSent {
    pub payload_bytes: u64,
    pub segments: u64,
    /// Link + IP + TCP header bytes of one segment.
    pub header_bytes: u64,
}

impl TcpSent {
    /// Every byte the segments took on the interface.
    pub fn wire_bytes(&self) -> u64 {
        self.payload_bytes + self.segments * self.header_bytes
    }
}

/// The counters of the TCP sockets whose peer is `peer` (summed), or why they cannot be read
/// (no `ss`, no such socket).
pub fn sent_to(peer: SocketAddr) -> Result<TcpSent, String> {
    let out = std::process::Command::new("ss")
        .args(["-tinH", "dst", &peer.to_string()])
        .output()
        .map_err(|e| format!("cannot run `ss` (iproute2) to read the TCP counters: {e}"))?;
    if !out.status.success() {
        return Err(format!("`ss` failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    parse_ss(&String::from_utf8_lossy(&out.stdout), peer.is_ipv6()).ok_or_else(|| format!("no TCP socket is connected to {peer}"))
}

/// Sums `ss -tinH` output: a socket line, then its indented info line of `key:value` tokens.
fn parse_ss(text: &str, ipv6: bool) -> Option<TcpSent> {
    let mut total = TcpSent { header_bytes: 14 + if ipv6 { 40 } else { 20 } + 20, ..TcpSent::default() };
    let mut sockets = 0;
    for line in text.lines().filter(|l| l.starts_with([' ', '\t'])) {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let field = |key: &str| tokens.iter().find_map(|t| t.strip_prefix(key)?.strip_prefix(':')?.parse::<u64>().ok());
        let Some(segments) = field("segs_out") else { continue };
        total.segments += segments;
        total.payload_bytes += field("bytes_sent").unwrap_or(0);
        if tokens.contains(&"ts") {
            total.header_bytes = 14 + if ipv6 { 40 } else { 20 } + 32;
        }
        sockets += 1;
    }
    (sockets > 0).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn parses_the_counters_and_the_timestamp_option() {
        let text = "ESTAB 0 0 10.77.0.1:40000 10.77.0.2:50051\n\t ts sack cubic wscale:7,7 mss:1448 bytes_sent:1200 bytes_acked:1201 segs_out:12 segs_in:9\n\
                    ESTAB 0 0 10.77.0.1:40002 10.77.0.2:50051\n\t cubic segs_out:3\n";
        let sent = parse_ss(text, false).unwrap();
        assert_eq!(sent, TcpSent { payload_bytes: 1200, segments: 15, header_bytes: 66 });
        assert_eq!(sent.wire_bytes(), 1200 + 15 * 66);
        assert_eq!(parse_ss("", false), None);
        assert_eq!(parse_ss("ESTAB 0 0 a b\n\t cubic\n", true), None, "no segs_out: not a reading");
    }

    #[test]
    fn counts_what_a_loopback_connection_sent() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        client.set_nodelay(true).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let before = sent_to(addr).unwrap();
        // Ten 100-byte messages, each answered, so each leaves in its own segment.
        for _ in 0..10 {
            client.write_all(&[7; 100]).unwrap();
            let mut got = [0; 100];
            server.read_exact(&mut got).unwrap();
            server.write_all(&[1]).unwrap();
            let mut ack = [0; 1];
            client.read_exact(&mut ack).unwrap();
        }
        let after = sent_to(addr).unwrap();
        assert_eq!(after.payload_bytes - before.payload_bytes, 1000);
        let segments = after.segments - before.segments;
        assert!((10..=20).contains(&segments), "{segments} segments for 10 messages (ACKs may add some)");
        // 14 + 20 + 20, plus 12 where the host negotiates TCP timestamps.
        assert!(after.header_bytes == 54 || after.header_bytes == 66, "{}", after.header_bytes);
        assert_eq!(after.wire_bytes(), after.payload_bytes + after.segments * after.header_bytes);
        assert!(sent_to(SocketAddr::from(([127, 0, 0, 1], 1))).is_err(), "no socket to port 1");
    }
}
