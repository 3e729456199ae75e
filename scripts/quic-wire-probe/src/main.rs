//! What a QUIC transport would put on the phone's link per image (issue 14, the 128 B goal).
//!
//! A client and a server on loopback, TLS 1.3 inside QUIC (quinn), a throwaway certificate.
//! The client sends `--images` messages of `--message-bytes` (default 58: the 57 B version-2
//! RB1 frame of the shipped bundle at q20 and a one-byte split index; no request id, the
//! stream's order says which reply is whose), each answered by `--reply-bytes`, one at a time,
//! `--gap-ms` apart, as `infer` sends them. Everything that could only add bytes is off: path
//! MTU probing, and connection IDs (zero-length at both ends, so a short header is 1 byte plus
//! the packet number). quinn's own counters give the UDP payload of every datagram the client
//! sent; each datagram also costs 42 B of Ethernet (14), IPv4 (20) and UDP (8) headers at a
//! veth, which is what `scripts/netem.sh` counts for TCP.
//!
//! `--mode stream` sends every message on one long-lived bidirectional stream, each with a
//! one-byte length prefix; `--mode per-image` opens a stream per image (the stream's end marks
//! the message's end).

use quinn::crypto::rustls::QuicClientConfig;
use quinn::{ClientConfig, Endpoint, EndpointConfig, ServerConfig, TransportConfig};
use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// Ethernet + IPv4 + UDP header bytes of one datagram on a veth.
const HEADERS_PER_DATAGRAM: u64 = 14 + 20 + 8;

struct Options {
    images: u64,
    message_bytes: usize,
    reply_bytes: usize,
    gap_ms: u64,
    per_image: bool,
}

fn parse() -> Result<Options> {
    let mut o = Options { images: 200, message_bytes: 58, reply_bytes: 40, gap_ms: 1, per_image: false };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--images" => o.images = value()?.parse()?,
            "--message-bytes" => o.message_bytes = value()?.parse()?,
            "--reply-bytes" => o.reply_bytes = value()?.parse()?,
            "--gap-ms" => o.gap_ms = value()?.parse()?,
            "--mode" => o.per_image = match value()?.as_str() {
                "stream" => false,
                "per-image" => true,
                other => return Err(format!("--mode is stream or per-image, got `{other}`").into()),
            },
            other => return Err(format!("unknown option `{other}`; options: --images N --message-bytes B --reply-bytes B --gap-ms MS --mode stream|per-image").into()),
        }
    }
    if o.message_bytes == 0 || o.message_bytes > 127 || o.images == 0 {
        return Err("need --images ≥ 1 and 1 ≤ --message-bytes ≤ 127 (one length byte)".into());
    }
    Ok(o)
}

fn transport() -> Arc<TransportConfig> {
    let mut t = TransportConfig::default();
    t.mtu_discovery_config(None);
    Arc::new(t)
}

fn endpoint_config() -> EndpointConfig {
    let mut c = EndpointConfig::default();
    c.cid_generator(|| Box::new(quinn_proto::RandomConnectionIdGenerator::new(0)));
    c
}

async fn serve(server: Endpoint, o: &Options) -> Result<()> {
    let conn = server.accept().await.ok_or("no connection")?.await?;
    let reply = vec![7u8; o.reply_bytes];
    if o.per_image {
        while let Ok((mut send, mut recv)) = conn.accept_bi().await {
            recv.read_to_end(1 << 10).await?;
            send.write_all(&reply).await?;
            send.finish()?;
        }
    } else {
        let (mut send, mut recv) = conn.accept_bi().await?;
        let mut message = vec![0u8; 1 + o.message_bytes];
        while recv.read_exact(&mut message).await.is_ok() {
            send.write_all(&reply).await?;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let o = Arc::new(parse()?);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
    let der = cert.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let mut server_config = ServerConfig::with_single_cert(vec![der.clone()], key)?;
    server_config.transport_config(transport());
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let addr = socket.local_addr()?;
    let server = Endpoint::new(endpoint_config(), Some(server_config), socket, Arc::new(quinn::TokioRuntime))?;
    let server_options = Arc::clone(&o);
    tokio::spawn(async move { serve(server, &server_options).await });

    let mut roots = rustls::RootCertStore::empty();
    roots.add(der)?;
    let tls = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let mut client_config = ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls)?));
    client_config.transport_config(transport());
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let mut client = Endpoint::new(endpoint_config(), None, socket, Arc::new(quinn::TokioRuntime))?;
    client.set_default_client_config(client_config);
    let conn = client.connect(addr, "localhost")?.await?;
    let handshake = conn.stats().udp_tx;

    let mut message = vec![o.message_bytes as u8];
    message.extend(std::iter::repeat_n(3u8, o.message_bytes));
    let mut stream = if o.per_image { None } else { Some(conn.open_bi().await?) };
    let mut reply = vec![0u8; o.reply_bytes];
    for _ in 0..o.images {
        match stream.as_mut() {
            Some((send, recv)) => {
                send.write_all(&message).await?;
                recv.read_exact(&mut reply).await?;
            }
            None => {
                let (mut send, mut recv) = conn.open_bi().await?;
                send.write_all(&message[1..]).await?;
                send.finish()?;
                recv.read_to_end(1 << 10).await?;
            }
        }
        tokio::time::sleep(Duration::from_millis(o.gap_ms)).await;
    }
    let stats = conn.stats();
    let wire = |datagrams: u64, bytes: u64| bytes + HEADERS_PER_DATAGRAM * datagrams;
    let (datagrams, bytes) = (stats.udp_tx.datagrams - handshake.datagrams, stats.udp_tx.bytes - handshake.bytes);
    let n = o.images as f64;
    println!("mode: {}; {} images of {} B, replies of {} B", if o.per_image { "per-image" } else { "stream" }, o.images, o.message_bytes, o.reply_bytes);
    println!("handshake: {} datagrams, {} B on the wire", handshake.datagrams, wire(handshake.datagrams, handshake.bytes));
    println!("images: {datagrams} datagrams, {:.1} B per image on the wire", wire(datagrams, bytes) as f64 / n);
    println!("with the handshake: {:.1} B per image", wire(stats.udp_tx.datagrams, stats.udp_tx.bytes) as f64 / n);
    println!("frames the client sent: {:?}", stats.frame_tx);
    Ok(())
}
