//! `rill run`: the agent process. Loads a config, keeps its component graph running, serves the HTTP API,
//! UI, metrics and the process's own profiles, reloads on SIGHUP or `/-/reload`, and shuts down gracefully
//! on SIGINT/SIGTERM.

pub mod api;
pub mod logs;
pub mod process_metrics;
pub mod profiling;
pub mod reload;
pub mod server;
pub mod ui;

#[cfg(test)]
mod tests;

use crate::{output, ExitCode};
use river::render::Colour;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How long components get to stop on shutdown (they stop concurrently, so this bounds the whole stop).
const STOP_TIMEOUT: Duration = Duration::from_secs(4);
/// How long in-flight HTTP requests get to finish on shutdown before they are dropped.
const HTTP_DRAIN: Duration = Duration::from_millis(500);

/// Arguments of `rill run` (flag names as in Grafana Agent Flow).
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The config: a `.river` file, or a directory whose `*.river` files are merged.
    #[arg(value_name = "CONFIG_PATH")]
    pub config: PathBuf,
    /// Address the HTTP server listens on.
    #[arg(long = "server.http.listen-addr", default_value = "127.0.0.1:12345")]
    pub listen_addr: SocketAddr,
    /// Where components keep their data (each in `<storage.path>/<component id>`).
    #[arg(long = "storage.path", default_value = "data-rill/")]
    pub storage_path: PathBuf,
    /// Clustering settings.
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// The `--cluster.*` flags.
#[derive(Clone, Debug, clap::Args)]
pub struct ClusterArgs {
    /// Join a cluster of agents sharing the work.
    #[arg(long = "cluster.enabled")]
    pub enabled: bool,
    /// This node's name in the cluster (default: the hostname).
    #[arg(long = "cluster.node-name")]
    pub node_name: Option<String>,
    /// The address other nodes reach this one at (default: the listen address).
    #[arg(long = "cluster.advertise-address")]
    pub advertise_address: Option<String>,
    /// Peers to join, comma-separated.
    #[arg(long = "cluster.join-addresses", value_delimiter = ',')]
    pub join_addresses: Vec<String>,
    /// How often to rejoin the peers, to heal a split cluster (0s: never).
    #[arg(long = "cluster.rejoin-interval", default_value = "60s", value_parser = humantime::parse_duration)]
    pub rejoin_interval: Duration,
    /// The cluster's name; nodes of differently named clusters do not join each other.
    #[arg(long = "cluster.name", default_value = "")]
    pub name: String,
    /// How often to gossip; a killed node is detected after about 6 intervals, and each node sends and
    /// receives about 0.6 KB/s in all in a 10-node cluster at 1s.
    #[arg(long = "cluster.gossip-interval", default_value = "1s", value_parser = humantime::parse_duration)]
    pub gossip_interval: Duration,
}

impl ClusterArgs {
    /// The node name: the flag, else the hostname.
    pub fn node_name(&self) -> String {
        self.node_name.clone().unwrap_or_else(hostname)
    }

    /// The cluster service's settings for a node whose HTTP server listens on `listen`: gossip goes over UDP
    /// on the same address and port.
    pub fn config(
        &self,
        listen: SocketAddr,
    ) -> Result<cluster::ClusterConfig, cluster::ClusterError> {
        let mut c = cluster::ClusterConfig::new(self.node_name(), listen);
        if let Some(a) = self.advertise_address.as_deref() {
            c.advertise_addr = Some(cluster::ClusterConfig::parse_advertise_address(
                a,
                listen.port(),
            )?);
        }
        c.join_addresses = self
            .join_addresses
            .iter()
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect();
        c.rejoin_interval = self.rejoin_interval;
        c.cluster_name = self.name.clone();
        if self.gossip_interval.is_zero() {
            return Err(cluster::ClusterError::InvalidSetting {
                name: "--cluster.gossip-interval",
                reason: "must be more than zero",
            });
        }
        c.gossip_interval = self.gossip_interval;
        c.leave_delay = self.gossip_interval * 3;
        Ok(c)
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The most async worker threads: the agent's async work is I/O (heavy work runs on blocking threads), and
/// each worker costs stack and allocator state, so a large host does not get one per CPU.
const MAX_WORKER_THREADS: usize = 4;
/// How long an idle blocking thread is kept.
const BLOCKING_KEEP_ALIVE: Duration = Duration::from_secs(60);

fn worker_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_WORKER_THREADS)
}

/// Runs `rill run` until a shutdown signal.
pub fn run(args: RunArgs, colour: Colour) -> ExitCode {
    let logs = logs::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("rill")
        .worker_threads(worker_threads())
        // Scrapes run blocking work (profile decoding, naming) every few seconds: keep those threads past a
        // scrape interval rather than start new ones (and their stacks) each time.
        .thread_keep_alive(BLOCKING_KEEP_ALIVE)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            output::error(&format_args!("cannot start the async runtime: {e}"));
            return ExitCode::Failure;
        }
    };
    let code = runtime.block_on(agent(args, logs, colour));
    // Components that ignored cancellation must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

async fn agent(args: RunArgs, logs: logs::LogControl, colour: Colour) -> ExitCode {
    // Installed before anything can report ready, so a signal sent the moment `/-/ready` answers is ours
    // to handle rather than the default action's (which would kill the process without a clean stop).
    let Some(mut signals) = Signals::install() else {
        output::error(&"cannot install signal handlers");
        return ExitCode::Failure;
    };
    let listener = match tokio::net::TcpListener::bind(args.listen_addr).await {
        Ok(l) => l,
        Err(e) => {
            output::error(&format_args!("cannot listen on {}: {e}", args.listen_addr));
            return ExitCode::Failure;
        }
    };
    let cluster = if args.cluster.enabled {
        let listen = listener.local_addr().unwrap_or(args.listen_addr);
        let started = match args.cluster.config(listen) {
            Ok(config) => cluster::ClusterService::start(config).await,
            Err(e) => Err(e),
        };
        match started {
            Ok(c) => Some(c),
            Err(e) => {
                output::error(&format_args!("clustering: {e}"));
                return ExitCode::Failure;
            }
        }
    } else {
        None
    };
    let state = match server::AppState::new(&args, logs, cluster.clone()) {
        Ok(s) => s,
        Err(e) => {
            output::error(&e);
            return ExitCode::Failure;
        }
    };
    let addr = listener.local_addr().unwrap_or(args.listen_addr);
    let http_stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(server::serve(
        listener,
        server::router(state.clone()),
        http_stop.clone(),
    ));
    tracing::info!(%addr, "now listening for http traffic");

    let first_load = tokio::select! {
        loaded = state.reloader().reload() => loaded,
        () = signals.shutdown_requested() => {
            tracing::info!("shutting down before the config finished loading");
            state.controller().shutdown().await;
            return ExitCode::Success;
        }
    };
    match first_load {
        Ok(report) => {
            tracing::info!(
                path = %args.config.display(),
                components = state.controller().components().len(),
                "config loaded"
            );
            reload::log_warnings(&report);
        }
        Err(e) => {
            e.print(colour);
            output::error(&format_args!("could not load {}", args.config.display()));
            return e.exit_code();
        }
    }
    if let Some(c) = &cluster {
        // Membership changes re-filter the components' work; the first load succeeded, so take a share.
        let controller = state.controller().clone();
        c.on_change(move || controller.cluster_changed());
        c.become_participant().await;
    }

    signals.wait_for_shutdown(&state).await;
    if let Some(c) = &cluster {
        // Components keep running while the peers learn that this node leaves and take its work over.
        tracing::info!("leaving the cluster");
        c.terminate().await;
    }
    tracing::info!("shutting down");
    http_stop.cancel();
    if tokio::time::timeout(HTTP_DRAIN, server).await.is_err() {
        tracing::debug!("dropping unfinished http requests");
    }
    if tokio::time::timeout(
        STOP_TIMEOUT + Duration::from_millis(500),
        state.controller().shutdown(),
    )
    .await
    .is_err()
    {
        tracing::warn!("components did not stop in time");
    }
    tracing::info!("stopped");
    ExitCode::Success
}

/// The process's SIGHUP, SIGINT and SIGTERM streams.
struct Signals {
    hup: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Option<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Some(Self {
            hup: signal(SignalKind::hangup()).ok()?,
            int: signal(SignalKind::interrupt()).ok()?,
            term: signal(SignalKind::terminate()).ok()?,
        })
    }

    /// Returns on the first SIGINT or SIGTERM.
    async fn shutdown_requested(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {},
            _ = self.term.recv() => {},
        }
    }

    /// Reloads on SIGHUP; returns on SIGINT or SIGTERM. A second SIGINT/SIGTERM during shutdown exits at
    /// once.
    async fn wait_for_shutdown(mut self, state: &server::AppState) {
        loop {
            tokio::select! {
                _ = self.hup.recv() => {
                    tracing::info!("reloading on SIGHUP");
                    match state.reloader().reload().await {
                        Ok(report) => {
                            tracing::info!("config reloaded");
                            reload::log_warnings(&report);
                        }
                        Err(e) => tracing::error!(error = %e, "config reload failed; the running config is unchanged"),
                    }
                }
                _ = self.int.recv() => break,
                _ = self.term.recv() => break,
            }
        }
        tokio::spawn(async move {
            self.shutdown_requested().await;
            tracing::warn!("second signal: exiting without waiting for components");
            std::process::exit(1);
        });
    }
}
