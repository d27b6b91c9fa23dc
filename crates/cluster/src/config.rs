//! What the cluster service is started with (the binary fills it from its `--cluster.*` flags).

use std::net::SocketAddr;
use std::time::Duration;

/// Settings of one node's cluster service.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// This node's name; unique in the cluster. Ownership is computed from names, so a node restarted under
    /// the same name gets the same share back.
    pub node_name: String,
    /// Where gossip is received (UDP). Rill uses the HTTP listen address: TCP and UDP ports are distinct.
    /// Port 0 picks a free port (tests).
    pub listen_addr: SocketAddr,
    /// The address other nodes reach this one at; defaults to the listen address (with the port actually
    /// bound). It must not be an unspecified address such as `0.0.0.0`.
    pub advertise_addr: Option<SocketAddr>,
    /// Peers to join through (`host:port` or `ip:port`; without a port, this node's advertised port is
    /// used). Any one live peer is enough: the others are learned by gossip.
    pub join_addresses: Vec<String>,
    /// How often the join addresses are contacted again, so that nodes started in any order, or separated
    /// by a partition, find each other. Zero turns rejoining off (the join addresses are still used at
    /// start).
    pub rejoin_interval: Duration,
    /// The cluster's name: nodes only gossip with nodes of the same name.
    pub cluster_name: String,
    /// How often a node gossips (with up to three peers).
    pub gossip_interval: Duration,
    /// The failure detector's threshold: a peer is declared dead once no news of its heartbeat came for
    /// `phi_threshold` times the mean interval between its heartbeats as this node sees them.
    pub phi_threshold: f64,
    /// A change of the participants is reported to components once membership has been quiet this long
    /// (bursts, such as several nodes starting at once, are reported once).
    pub debounce: Duration,
    /// How long `terminate` waits after announcing the terminating state, so that it reaches every peer
    /// before this node stops gossiping.
    pub leave_delay: Duration,
    /// How long a dead node is remembered (it is gossiped about, as dead, for half of it).
    pub dead_node_grace_period: Duration,
    /// Compress gossip datagrams (zstd); every node of a cluster reads both forms.
    pub compress: bool,
}

impl ClusterConfig {
    /// Defaults for a node named `node_name` gossiping on `listen_addr`.
    pub fn new(node_name: impl Into<String>, listen_addr: SocketAddr) -> ClusterConfig {
        let gossip_interval = Duration::from_secs(1);
        ClusterConfig {
            node_name: node_name.into(),
            listen_addr,
            advertise_addr: None,
            join_addresses: Vec::new(),
            rejoin_interval: Duration::from_secs(60),
            cluster_name: "rill".to_string(),
            gossip_interval,
            phi_threshold: 6.0,
            debounce: Duration::from_millis(250),
            leave_delay: gossip_interval * 3,
            dead_node_grace_period: Duration::from_secs(600),
            compress: true,
        }
    }

    /// Parses an advertise address flag: `ip:port`, `host:port` (resolved now, first address), or either
    /// without a port (then `default_port`).
    pub fn parse_advertise_address(
        value: &str,
        default_port: u16,
    ) -> Result<SocketAddr, crate::ClusterError> {
        let bad = |reason: String| crate::ClusterError::AdvertiseAddress {
            value: value.to_string(),
            reason,
        };
        let with_port =
            Self::with_port(value, default_port).ok_or_else(|| bad("it is empty".into()))?;
        if let Ok(a) = with_port.parse::<SocketAddr>() {
            return Ok(a);
        }
        use std::net::ToSocketAddrs;
        let mut addrs = with_port
            .to_socket_addrs()
            .map_err(|e| bad(format!("cannot resolve it: {e}")))?;
        addrs
            .next()
            .ok_or_else(|| bad("it resolves to no address".into()))
    }

    /// `addr` with `default_port` when it has none; `None` for an empty string.
    pub(crate) fn with_port(addr: &str, default_port: u16) -> Option<String> {
        let addr = addr.trim();
        if addr.is_empty() {
            return None;
        }
        if addr.parse::<SocketAddr>().is_ok() {
            return Some(addr.to_string());
        }
        if let Ok(ip) = addr.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
            return Some(SocketAddr::new(ip, default_port).to_string());
        }
        match addr.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Some(addr.to_string())
            }
            _ => Some(format!("{addr}:{default_port}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_addresses_get_a_default_port() {
        assert_eq!(
            ClusterConfig::with_port("10.0.0.1:80", 1).unwrap(),
            "10.0.0.1:80"
        );
        assert_eq!(
            ClusterConfig::with_port("10.0.0.1", 9).unwrap(),
            "10.0.0.1:9"
        );
        assert_eq!(ClusterConfig::with_port("::1", 9).unwrap(), "[::1]:9");
        assert_eq!(ClusterConfig::with_port("[::1]:7", 9).unwrap(), "[::1]:7");
        assert_eq!(ClusterConfig::with_port("node-a", 9).unwrap(), "node-a:9");
        assert_eq!(
            ClusterConfig::with_port(" node-a:12 ", 9).unwrap(),
            "node-a:12"
        );
        assert_eq!(ClusterConfig::with_port("", 9), None);
    }

    #[test]
    fn advertise_addresses_parse_or_say_why() {
        let p = ClusterConfig::parse_advertise_address;
        assert_eq!(p("10.0.0.1:80", 1).unwrap(), "10.0.0.1:80".parse().unwrap());
        assert_eq!(p("10.0.0.1", 7).unwrap(), "10.0.0.1:7".parse().unwrap());
        assert_eq!(p("localhost:5", 7).unwrap().port(), 5);
        let e = p("", 7).unwrap_err().to_string();
        assert_eq!(e, "invalid cluster advertise address \"\": it is empty");
        let e = p("no-such-host.invalid:5", 7).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "invalid cluster advertise address \"no-such-host.invalid:5\": cannot resolve it"
            ),
            "{e}"
        );
    }
}
