//! The UDP transport under chitchat: counts gossip traffic and compresses datagrams.
//!
//! Chitchat's own UDP transport does not say how many bytes it moves, and its digests (a fixed-width record
//! per node, every round) compress well, so we carry its messages ourselves. Each datagram is one byte of
//! framing (`0` = raw chitchat message, `1` = zstd-compressed message) and the payload. Both ends must be
//! Rill: the framing is not chitchat's wire format.

use crate::metrics::GossipStats;
use async_trait::async_trait;
use chitchat::transport::{Socket, Transport};
use chitchat::{ChitchatMessage, Deserializable, Serializable};
use std::net::SocketAddr;
use tracing::{debug, warn};

/// The largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65_507;
const RAW: u8 = 0;
const ZSTD: u8 = 1;
/// Fast level: gossip is small and frequent, the CPU matters more than the last few bytes.
const ZSTD_LEVEL: i32 = 1;

/// Opens [`CountingSocket`]s.
pub(crate) struct CountingTransport {
    pub(crate) stats: GossipStats,
    pub(crate) compress: bool,
    /// A socket bound beforehand (so that port 0 is resolved before chitchat needs the address); used
    /// by the first `open` for its address.
    pub(crate) prebound: std::sync::Mutex<Option<std::net::UdpSocket>>,
}

impl CountingTransport {
    fn take_prebound(&self, listen_addr: SocketAddr) -> Option<std::net::UdpSocket> {
        let mut slot = self.prebound.lock().ok()?;
        match slot.as_ref().map(|s| s.local_addr()) {
            Some(Ok(a)) if a == listen_addr => slot.take(),
            _ => None,
        }
    }
}

#[async_trait]
impl Transport for CountingTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let socket = match self.take_prebound(listen_addr) {
            Some(std_socket) => {
                std_socket.set_nonblocking(true)?;
                tokio::net::UdpSocket::from_std(std_socket)?
            }
            None => tokio::net::UdpSocket::bind(listen_addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot bind {listen_addr}/udp for gossip: {e}"))?,
        };
        Ok(Box::new(CountingSocket {
            socket,
            stats: self.stats.clone(),
            compress: self.compress,
            plain: Vec::with_capacity(4096),
            out: Vec::with_capacity(4096),
            recv_buf: vec![0u8; MAX_DATAGRAM].into_boxed_slice(),
        }))
    }
}

/// A UDP socket that frames, compresses and counts chitchat messages.
struct CountingSocket {
    socket: tokio::net::UdpSocket,
    stats: GossipStats,
    compress: bool,
    plain: Vec<u8>,
    out: Vec<u8>,
    recv_buf: Box<[u8]>,
}

impl CountingSocket {
    /// Frames `self.plain` into `self.out`, compressed when that is smaller.
    fn frame(&mut self) {
        self.out.clear();
        if self.compress {
            if let Ok(compressed) = zstd::bulk::compress(&self.plain, ZSTD_LEVEL) {
                if compressed.len() < self.plain.len() {
                    self.out.push(ZSTD);
                    self.out.extend_from_slice(&compressed);
                    return;
                }
            }
        }
        self.out.push(RAW);
        self.out.extend_from_slice(&self.plain);
    }
}

/// Unframes one datagram; `None` (logged) for anything that is not a Rill gossip message.
fn decode(datagram: &[u8], from: SocketAddr) -> Option<ChitchatMessage> {
    let (&kind, payload) = datagram.split_first()?;
    let decompressed;
    let mut body: &[u8] = match kind {
        RAW => payload,
        ZSTD => match zstd::bulk::decompress(payload, MAX_DATAGRAM) {
            Ok(d) => {
                decompressed = d;
                &decompressed
            }
            Err(e) => {
                debug!(%from, error = %e, "dropping a gossip datagram that does not decompress");
                return None;
            }
        },
        other => {
            debug!(%from, framing = other, "dropping a datagram that is not Rill gossip");
            return None;
        }
    };
    match ChitchatMessage::deserialize(&mut body) {
        Ok(m) => Some(m),
        Err(e) => {
            debug!(%from, error = %e, "dropping an invalid gossip message");
            None
        }
    }
}

#[async_trait]
impl Socket for CountingSocket {
    async fn send(&mut self, to: SocketAddr, msg: ChitchatMessage) -> anyhow::Result<()> {
        self.plain.clear();
        msg.serialize(&mut self.plain);
        self.frame();
        if self.out.len() > MAX_DATAGRAM {
            // Chitchat keeps deltas within the datagram size; a digest of thousands of nodes may not fit.
            warn!(%to, bytes = self.out.len(), "gossip message too large for one datagram, not sent");
            return Ok(());
        }
        match self.socket.send_to(&self.out, to).await {
            Ok(n) => {
                self.stats.sent_bytes.inc_by(n as u64);
                self.stats.sent_messages.inc();
            }
            // A peer that is gone or unreachable is the failure detector's business, not a broken socket.
            Err(e) => debug!(%to, error = %e, "gossip send failed"),
        }
        Ok(())
    }

    async fn recv(&mut self) -> anyhow::Result<(SocketAddr, ChitchatMessage)> {
        loop {
            let (len, from) = match self.socket.recv_from(&mut self.recv_buf).await {
                Ok(r) => r,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionRefused
                            | std::io::ErrorKind::ConnectionReset
                            | std::io::ErrorKind::OutOfMemory
                            | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(anyhow::anyhow!("gossip socket failed: {e}")),
            };
            self.stats.received_bytes.inc_by(len as u64);
            self.stats.received_messages.inc();
            if let Some(msg) = decode(&self.recv_buf[..len], from) {
                return Ok((from, msg));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junk_is_dropped_not_fatal() {
        let from: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(decode(&[], from).is_none());
        assert!(decode(&[7, 1, 2, 3], from).is_none());
        assert!(decode(&[RAW, 1, 2, 3], from).is_none());
        assert!(decode(&[ZSTD, 1, 2, 3], from).is_none());
    }

    #[tokio::test]
    async fn messages_round_trip_and_are_counted() {
        let stats = GossipStats::default();
        let t = CountingTransport {
            stats: stats.clone(),
            compress: true,
            prebound: std::sync::Mutex::new(None),
        };
        let mut a = t.open("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let probe = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let probe_addr = probe.local_addr().unwrap();
        a.send(probe_addr, ChitchatMessage::BadCluster)
            .await
            .unwrap();
        let mut buf = [0u8; 100];
        let (n, a_addr) = probe.recv_from(&mut buf).await.unwrap();
        assert_eq!(stats.sent_bytes.get(), n as u64);
        assert_eq!(decode(&buf[..n], a_addr), Some(ChitchatMessage::BadCluster));
        // Junk then a valid message: the junk is counted and skipped.
        probe.send_to(b"junk", a_addr).await.unwrap();
        probe.send_to(&buf[..n], a_addr).await.unwrap();
        let (from, msg) = a.recv().await.unwrap();
        assert_eq!(from, probe_addr);
        assert_eq!(msg, ChitchatMessage::BadCluster);
        assert_eq!(stats.received_messages.get(), 2);
        assert_eq!(stats.received_bytes.get(), 4 + n as u64);
    }
}
