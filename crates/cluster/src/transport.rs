//! The UDP transport under chitchat: counts gossip traffic and compresses datagrams.
//!
//! Chitchat's own UDP transport does not say how many bytes it moves, and its messages compress well, so we
//! carry them ourselves. Each datagram is one byte of framing and the payload:
//!
//! - `0`: a raw chitchat message;
//! - `1`: a zstd frame (read for compatibility; no longer written);
//! - `2`: a 4-byte reference (a hash) then a zstd frame without its magic number, compressed with, as
//!   dictionary, the referenced message: a `Syn` or `SynAck` that the receiver sent to us recently;
//! - `3`: a zstd frame without its magic number.
//!
//! Why references: in steady state every `Syn` and `SynAck` is a digest of the whole cluster (every node's id,
//! generation, address, heartbeat and versions), and the digest a peer last sent us differs from ours only in
//! the heartbeats. Compressed against it, a digest of 10 nodes takes about 50 bytes instead of 150. The
//! receiver keeps what it sent for [`SENT_RETENTION`]; the sender only names messages younger than
//! [`REFERENCE_MAX_AGE`], so the reference is still there unless the peer restarted (the datagram is then
//! dropped, as a lost one would be, and the next exchange starts from a plain frame).
//! Both ends must be Rill: the framing is not chitchat's wire format.

use crate::metrics::GossipStats;
use async_trait::async_trait;
use chitchat::transport::{Socket, Transport};
use chitchat::{ChitchatMessage, Deserializable, Serializable};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tracing::{debug, warn};

/// The largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65_507;
const RAW: u8 = 0;
const ZSTD: u8 = 1;
const ZSTD_REF: u8 = 2;
const ZSTD_BARE: u8 = 3;
/// Gossip is small and frequent: a middle level costs little CPU on a few hundred bytes.
const ZSTD_LEVEL: i32 = 3;
/// Every zstd frame starts with it; left out of the datagrams.
const ZSTD_MAGIC: [u8; 4] = 0xFD2F_B528u32.to_le_bytes();
/// A message received from a peer is used as the reference for what we send it for this long.
pub(crate) const REFERENCE_MAX_AGE: Duration = Duration::from_secs(5);
/// Messages sent are kept this long, since peers may name them as reference.
pub(crate) const SENT_RETENTION: Duration = Duration::from_secs(15);
/// At most this many sent messages are kept (about a 100-node cluster's worth of retention).
const SENT_MAX: usize = 512;
/// Larger messages (digests of hundreds of nodes) are not kept as references: they would cost memory.
const REFERENCE_MAX_LEN: usize = 16 * 1024;

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
            codec: Codec::new(self.compress)?,
            recv_buf: vec![0u8; MAX_DATAGRAM].into_boxed_slice(),
        }))
    }
}

/// A UDP socket that frames, compresses and counts chitchat messages.
struct CountingSocket {
    socket: tokio::net::UdpSocket,
    stats: GossipStats,
    codec: Codec,
    recv_buf: Box<[u8]>,
}

/// A message that may serve as a compression reference.
struct Reference {
    at: Instant,
    hash: u32,
    bytes: Vec<u8>,
}

fn hash(bytes: &[u8]) -> u32 {
    xxhash_rust::xxh64::xxh64(bytes, 0) as u32
}

/// Whether a message may serve as a reference: the digests, which are alike from one message to the next.
fn is_reference(msg: &ChitchatMessage) -> bool {
    matches!(
        msg,
        ChitchatMessage::Syn { .. } | ChitchatMessage::SynAck { .. }
    )
}

/// Frames and unframes datagrams; remembers the references.
pub(crate) struct Codec {
    compress: bool,
    compressor: zstd::bulk::Compressor<'static>,
    decompressor: zstd::bulk::Decompressor<'static>,
    /// The last digest-carrying message received from each address.
    received: HashMap<SocketAddr, Reference>,
    /// Digest-carrying messages sent, oldest first.
    sent: VecDeque<Reference>,
    /// The serialized message being sent.
    plain: Vec<u8>,
    /// The datagram being sent.
    out: Vec<u8>,
    scratch: Vec<u8>,
}

impl Codec {
    pub(crate) fn new(compress: bool) -> anyhow::Result<Codec> {
        let mut compressor = zstd::bulk::Compressor::new(ZSTD_LEVEL)?;
        // The size and the dictionary id cost bytes and are not needed to decode.
        compressor.set_parameter(zstd::zstd_safe::CParameter::ContentSizeFlag(false))?;
        compressor.set_parameter(zstd::zstd_safe::CParameter::DictIdFlag(false))?;
        // Messages and references are at most a few KB: small tables do as well as the level's defaults
        // (hundreds of KB, kept for the life of the node).
        compressor.set_parameter(zstd::zstd_safe::CParameter::WindowLog(16))?;
        compressor.set_parameter(zstd::zstd_safe::CParameter::HashLog(12))?;
        compressor.set_parameter(zstd::zstd_safe::CParameter::ChainLog(12))?;
        Ok(Codec {
            compress,
            compressor,
            decompressor: zstd::bulk::Decompressor::new()?,
            received: HashMap::new(),
            sent: VecDeque::new(),
            plain: Vec::with_capacity(4096),
            out: Vec::with_capacity(4096),
            scratch: Vec::with_capacity(4096),
        })
    }

    /// Compresses `self.plain` with `dictionary` into `self.scratch` (magic number left out); false when
    /// zstd failed.
    fn compress_with(&mut self, dictionary: &[u8]) -> bool {
        self.scratch.clear();
        self.scratch
            .reserve(zstd::zstd_safe::compress_bound(self.plain.len()));
        let ok = self
            .compressor
            .set_dictionary(ZSTD_LEVEL, dictionary)
            .and_then(|()| {
                self.compressor
                    .compress_to_buffer(&self.plain, &mut self.scratch)
            })
            .is_ok();
        ok && self.scratch.starts_with(&ZSTD_MAGIC)
    }

    /// Serializes and frames `msg` for `to` into `self.out`: the smallest of raw, plain zstd and zstd against
    /// the last reference from `to`.
    pub(crate) fn encode(&mut self, to: SocketAddr, msg: &ChitchatMessage) -> &[u8] {
        self.plain.clear();
        msg.serialize(&mut self.plain);
        self.out.clear();
        self.out.push(RAW);
        self.out.extend_from_slice(&self.plain);
        let now = Instant::now();
        if self.compress {
            let reference = self
                .received
                .get(&to)
                .filter(|r| now.duration_since(r.at) < REFERENCE_MAX_AGE)
                .map(|r| (r.hash, r.bytes.clone()));
            if let Some((ref_hash, dictionary)) = reference {
                if self.compress_with(&dictionary) && 1 + self.scratch.len() < self.out.len() {
                    self.out.clear();
                    self.out.push(ZSTD_REF);
                    self.out.extend_from_slice(&ref_hash.to_le_bytes());
                    self.out.extend_from_slice(&self.scratch[4..]);
                }
            }
            if self.compress_with(&[]) && self.scratch.len() - 3 < self.out.len() {
                self.out.clear();
                self.out.push(ZSTD_BARE);
                self.out.extend_from_slice(&self.scratch[4..]);
            }
        }
        // Kept even when this node does not compress: its peers may.
        if is_reference(msg) && self.plain.len() <= REFERENCE_MAX_LEN {
            while self.sent.front().is_some_and(|r| {
                now.duration_since(r.at) > SENT_RETENTION || self.sent.len() >= SENT_MAX
            }) {
                self.sent.pop_front();
            }
            self.sent.push_back(Reference {
                at: now,
                hash: hash(&self.plain),
                bytes: self.plain.clone(),
            });
        }
        &self.out
    }

    /// Unframes one datagram; `None` (logged) for anything that is not a Rill gossip message.
    pub(crate) fn decode(&mut self, datagram: &[u8], from: SocketAddr) -> Option<ChitchatMessage> {
        let (&kind, payload) = datagram.split_first()?;
        let plain: Vec<u8> = match kind {
            RAW => payload.to_vec(),
            ZSTD => self.decompress(payload, &[], from)?,
            ZSTD_BARE => {
                let frame = [&ZSTD_MAGIC[..], payload].concat();
                self.decompress(&frame, &[], from)?
            }
            ZSTD_REF => {
                let (ref_hash, rest) = payload.split_first_chunk::<4>()?;
                let ref_hash = u32::from_le_bytes(*ref_hash);
                let Some(dictionary) = self
                    .sent
                    .iter()
                    .rev()
                    .find(|r| r.hash == ref_hash)
                    .map(|r| r.bytes.clone())
                else {
                    debug!(%from, "dropping a gossip datagram compressed against a message we no longer have");
                    return None;
                };
                let frame = [&ZSTD_MAGIC[..], rest].concat();
                self.decompress(&frame, &dictionary, from)?
            }
            other => {
                debug!(%from, framing = other, "dropping a datagram that is not Rill gossip");
                return None;
            }
        };
        let mut body: &[u8] = &plain;
        match ChitchatMessage::deserialize(&mut body) {
            Ok(m) if body.is_empty() => {
                if self.compress && is_reference(&m) && plain.len() <= REFERENCE_MAX_LEN {
                    let now = Instant::now();
                    if !self.received.contains_key(&from) {
                        // A new peer: forget the ones gone quiet.
                        self.received
                            .retain(|_, r| now.duration_since(r.at) < REFERENCE_MAX_AGE);
                    }
                    self.received.insert(
                        from,
                        Reference {
                            at: now,
                            hash: hash(&plain),
                            bytes: plain,
                        },
                    );
                }
                Some(m)
            }
            Ok(_) => {
                debug!(%from, "dropping a gossip message with trailing bytes");
                None
            }
            Err(e) => {
                debug!(%from, error = %e, "dropping an invalid gossip message");
                None
            }
        }
    }

    fn decompress(&mut self, frame: &[u8], dictionary: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
        self.scratch.clear();
        self.scratch.reserve(MAX_DATAGRAM);
        let result = self.decompressor.set_dictionary(dictionary).and_then(|()| {
            self.decompressor
                .decompress_to_buffer(frame, &mut self.scratch)
        });
        match result {
            // Copied out at its size: it may be kept as a reference.
            Ok(_) => Some(self.scratch.clone()),
            Err(e) => {
                debug!(%from, error = %e, "dropping a gossip datagram that does not decompress");
                None
            }
        }
    }
}

#[async_trait]
impl Socket for CountingSocket {
    async fn send(&mut self, to: SocketAddr, msg: ChitchatMessage) -> anyhow::Result<()> {
        let datagram = self.codec.encode(to, &msg);
        if datagram.len() > MAX_DATAGRAM {
            // Chitchat keeps deltas within the datagram size; a digest of thousands of nodes may not fit.
            warn!(%to, bytes = datagram.len(), "gossip message too large for one datagram, not sent");
            return Ok(());
        }
        match self.socket.send_to(datagram, to).await {
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
            if let Some(msg) = self.codec.decode(&self.recv_buf[..len], from) {
                return Ok((from, msg));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// A `Syn` of 10 nodes as chitchat serializes it, with heartbeats `base + i`.
    fn syn(base: u64) -> ChitchatMessage {
        let mut b = Vec::new();
        b.extend(45_139u16.to_le_bytes()); // chitchat's magic number
        b.extend([0u8, 0u8]); // protocol version, Syn
        10u16.serialize(&mut b);
        for i in 0..10u16 {
            let id = chitchat::ChitchatId::new(
                format!("node-{i:02}"),
                1_764_000_000_000_000_000 + u64::from(i) * 7_919_113,
                addr(40_000 + i),
            );
            id.serialize(&mut b);
            (base + u64::from(i)).serialize(&mut b); // heartbeat
            0u64.serialize(&mut b); // last gc version
            2u64.serialize(&mut b); // max version
        }
        "rill".to_string().serialize(&mut b);
        ChitchatMessage::deserialize(&mut b.as_slice()).unwrap()
    }

    fn plain_len(msg: &ChitchatMessage) -> usize {
        let mut b = Vec::new();
        msg.serialize(&mut b);
        b.len()
    }

    #[test]
    fn junk_is_dropped_not_fatal() {
        let mut c = Codec::new(true).unwrap();
        let from = addr(1);
        assert!(c.decode(&[], from).is_none());
        assert!(c.decode(&[7, 1, 2, 3], from).is_none());
        assert!(c.decode(&[RAW, 1, 2, 3], from).is_none());
        assert!(c.decode(&[ZSTD, 1, 2, 3], from).is_none());
        assert!(c.decode(&[ZSTD_BARE, 1, 2, 3], from).is_none());
        assert!(c.decode(&[ZSTD_REF, 1, 2, 3, 4, 5, 6], from).is_none());
        assert!(c.decode(&[ZSTD_REF, 1], from).is_none());
    }

    #[test]
    fn digests_are_compressed_against_the_peer_s_last_digest() {
        let (a_addr, b_addr) = (addr(1), addr(2));
        let mut a = Codec::new(true).unwrap();
        let mut b = Codec::new(true).unwrap();
        // B speaks first: no reference yet, a plain zstd frame.
        let first = b.encode(a_addr, &syn(100)).to_vec();
        assert_eq!(first[0], ZSTD_BARE);
        assert!(first.len() < plain_len(&syn(100)) / 2, "{}", first.len());
        assert_eq!(a.decode(&first, b_addr), Some(syn(100)));
        // A answers against B's digest: most of it is the same.
        let answer = a.encode(b_addr, &syn(103)).to_vec();
        assert_eq!(answer[0], ZSTD_REF);
        assert!(
            answer.len() * 2 < first.len(),
            "{} vs {}",
            answer.len(),
            first.len()
        );
        assert_eq!(b.decode(&answer, a_addr), Some(syn(103)));
        // And back again, against A's digest.
        let again = b.encode(a_addr, &syn(104)).to_vec();
        assert_eq!(again[0], ZSTD_REF);
        assert_eq!(a.decode(&again, b_addr), Some(syn(104)));
        // Other messages are not references and are still understood.
        let bad = b.encode(a_addr, &ChitchatMessage::BadCluster).to_vec();
        assert_eq!(a.decode(&bad, b_addr), Some(ChitchatMessage::BadCluster));
        // A restarted B no longer has what A refers to: the datagram is dropped, not misread; B's next
        // digest is plain, and A's answer to it refers to it.
        let stale = a.encode(b_addr, &syn(105)).to_vec();
        assert_eq!(stale[0], ZSTD_REF);
        let mut b = Codec::new(true).unwrap();
        assert_eq!(b.decode(&stale, a_addr), None);
        let fresh = b.encode(a_addr, &syn(200)).to_vec();
        assert_eq!(fresh[0], ZSTD_BARE);
        assert_eq!(a.decode(&fresh, b_addr), Some(syn(200)));
        let answer = a.encode(b_addr, &syn(201)).to_vec();
        assert_eq!(b.decode(&answer, a_addr), Some(syn(201)));
    }

    #[test]
    fn without_compression_messages_are_raw() {
        let mut a = Codec::new(false).unwrap();
        let mut b = Codec::new(false).unwrap();
        let d = b.encode(addr(1), &syn(1)).to_vec();
        assert_eq!(d[0], RAW);
        assert_eq!(d.len(), 1 + plain_len(&syn(1)));
        assert_eq!(a.decode(&d, addr(2)), Some(syn(1)));
        let d = a.encode(addr(2), &syn(2)).to_vec();
        assert_eq!(d[0], RAW);
        // A compressing node reads it, and its answer, compressed against it, is read too.
        let mut c = Codec::new(true).unwrap();
        assert_eq!(c.decode(&d, addr(1)), Some(syn(2)));
        let answer = c.encode(addr(1), &syn(3)).to_vec();
        assert_eq!(answer[0], ZSTD_REF);
        assert_eq!(a.decode(&answer, addr(3)), Some(syn(3)));
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
        assert_eq!(
            Codec::new(true).unwrap().decode(&buf[..n], a_addr),
            Some(ChitchatMessage::BadCluster)
        );
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
