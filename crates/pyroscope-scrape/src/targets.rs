//! From targets to scrape tasks: labels, URL, timeout and the task's identity.

use crate::args::{Mode, ProfileType};
use pyroscope::labels::{DELTA_LABEL, NAME_LABEL, SERVICE_NAME_LABEL};
use pyroscope::Labels;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

/// `__address__`: `host:port` of the target.
pub const ADDRESS_LABEL: &str = "__address__";
/// `__scheme__`: `http` or `https`.
pub const SCHEME_LABEL: &str = "__scheme__";
/// `__param_<name>`: a query parameter.
pub const PARAM_PREFIX: &str = "__param_";
/// `__meta_*`: discovery metadata.
pub const META_PREFIX: &str = "__meta_";
/// The sources of `service_name`, first match wins.
const SERVICE_NAME_SOURCES: [&[&str]; 5] = [
    &["__meta_kubernetes_pod_annotation_pyroscope_io_service_name"],
    &[
        "__meta_kubernetes_namespace",
        "__meta_kubernetes_pod_container_name",
    ],
    &["__meta_docker_container_name"],
    &["__meta_dockerswarm_container_label_service_name"],
    &["__meta_dockerswarm_service_name"],
];

/// What every task of the component shares.
#[derive(Clone, Debug, PartialEq)]
pub struct JobSettings {
    /// The `job` label.
    pub job: String,
    /// The default `__scheme__`.
    pub scheme: String,
    /// Query parameters.
    pub params: BTreeMap<String, Vec<String>>,
    /// The scrape interval.
    pub interval: Duration,
    /// The scrape timeout (before the delta stretch).
    pub timeout: Duration,
    /// The enabled profile types.
    pub profiles: Vec<Arc<ProfileType>>,
}

/// One (target, profile type) pair to scrape.
#[derive(Debug, PartialEq)]
pub struct TaskSpec {
    /// The identity: a hash of the forwarded labels, the URL and the mode. Also sets the phase.
    pub key: u64,
    /// The profile type.
    pub profile: Arc<ProfileType>,
    /// What is requested.
    pub url: String,
    /// What is forwarded: public labels plus `__name__` (and `__delta__` where it applies).
    pub labels: Labels,
    /// The `job` label.
    pub job: String,
    /// The request's timeout.
    pub timeout: Duration,
}

/// A target that cannot be scraped, reported on its own.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetError {
    /// Its public labels.
    pub labels: Labels,
    /// Why.
    pub error: String,
}

/// The key clustering hashes: the target's labels without `__meta_*`, in canonical form.
pub fn cluster_key(target: &Labels) -> String {
    let mut l = target.clone();
    l.retain(|l| !l.name.starts_with(META_PREFIX));
    l.canonical()
}

/// Builds the tasks of one target: one per enabled profile type.
pub fn tasks_for(target: &Labels, job: &JobSettings) -> Result<Vec<TaskSpec>, TargetError> {
    let mut lb = target.clone();
    lb.set_default("job", &job.job);
    lb.set_default(SCHEME_LABEL, &job.scheme);
    for (k, v) in &job.params {
        if let Some(first) = v.first() {
            lb.set_default(&format!("{PARAM_PREFIX}{k}"), first);
        }
    }
    let fail = |lb: &Labels, error: String| TargetError {
        labels: lb.without_internal(),
        error,
    };

    if lb.get(SERVICE_NAME_LABEL).is_none_or(str::is_empty) {
        let inferred = infer_service_name(&lb);
        lb.set(SERVICE_NAME_LABEL, &inferred);
    }

    let Some(address) = lb
        .get(ADDRESS_LABEL)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
    else {
        return Err(fail(&lb, "no address".into()));
    };
    let scheme = lb.get(SCHEME_LABEL).unwrap_or("http").to_string();
    let address = if has_port(&address) {
        address
    } else {
        match scheme.as_str() {
            "http" | "" => format!("{address}:80"),
            "https" => format!("{address}:443"),
            other => {
                return Err(fail(
                    &lb,
                    format!("invalid scheme: {}", river::parser::go_quote(other)),
                ))
            }
        }
    };
    if scheme != "http" && scheme != "https" {
        return Err(fail(
            &lb,
            format!("invalid scheme: {}", river::parser::go_quote(&scheme)),
        ));
    }
    if address.contains('/') || address.chars().any(char::is_whitespace) {
        return Err(fail(
            &lb,
            format!(
                "{} is not a valid hostname",
                river::parser::go_quote(&address)
            ),
        ));
    }
    lb.set(ADDRESS_LABEL, &address);
    lb.set_default("instance", &address);

    // Query: `params`, each overridden by its `__param_*` label, keys sorted.
    let mut query: BTreeMap<String, Vec<String>> = job.params.clone();
    for l in lb.iter() {
        if let Some(name) = l.name.strip_prefix(PARAM_PREFIX) {
            // As Prometheus does: the label replaces the first value, further values stay.
            match query.get_mut(name) {
                Some(vs) if !vs.is_empty() => vs[0] = l.value.to_string(),
                _ => {
                    query.insert(name.to_string(), vec![l.value.to_string()]);
                }
            }
        }
    }

    let mut tasks = Vec::with_capacity(job.profiles.len());
    for profile in &job.profiles {
        let mut labels = lb.without_internal();
        labels.set(NAME_LABEL, &profile.name);
        let mut q = query.clone();
        let mut timeout = job.timeout;
        match profile.mode {
            Mode::ServerDelta => {
                // A `seconds` the user set explicitly wins (the reference sent both; Go's handler took the
                // user's).
                q.entry("seconds".into()).or_insert_with(|| {
                    let secs = job.interval.as_secs().saturating_sub(1);
                    vec![secs.to_string()]
                });
                timeout += job.interval.saturating_sub(Duration::from_secs(1));
            }
            Mode::ClientDelta(_) | Mode::Godeltaprof => labels.set(DELTA_LABEL, "false"),
            Mode::Plain => {}
        }
        let url = build_url(&scheme, &address, &profile.path, &q);
        let mut h = std::hash::DefaultHasher::new();
        labels.hash(&mut h);
        url.hash(&mut h);
        profile.mode.hash(&mut h);
        tasks.push(TaskSpec {
            key: h.finish(),
            profile: profile.clone(),
            url,
            labels,
            job: lb.get("job").unwrap_or_default().to_string(),
            timeout,
        });
    }
    Ok(tasks)
}

fn infer_service_name(lb: &Labels) -> String {
    for source in SERVICE_NAME_SOURCES {
        let parts: Option<Vec<&str>> = source
            .iter()
            .map(|n| lb.get(n).filter(|v| !v.is_empty()))
            .collect();
        if let Some(parts) = parts {
            return parts.join("/");
        }
    }
    "unspecified".into()
}

/// Whether `host:port` (or `[v6]:port`) has a port.
fn has_port(address: &str) -> bool {
    if let Some(rest) = address.strip_prefix('[') {
        return rest
            .split_once(']')
            .is_some_and(|(_, after)| after.starts_with(':'));
    }
    // A bare IPv6 address has several colons and no port.
    address.matches(':').count() == 1
}

fn build_url(
    scheme: &str,
    address: &str,
    path: &str,
    query: &BTreeMap<String, Vec<String>>,
) -> String {
    let mut url = format!("{scheme}://{address}");
    if !path.starts_with('/') {
        url.push('/');
    }
    url.push_str(path);
    let mut first = true;
    for (k, vs) in query {
        for v in vs {
            url.push(if first { '?' } else { '&' });
            first = false;
            escape_into(&mut url, k);
            url.push('=');
            escape_into(&mut url, v);
        }
    }
    url
}

/// Go's `url.QueryEscape`.
fn escape_into(out: &mut String, s: &str) {
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 15)] as char);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::ProfilingConfig;

    fn job(interval: u64) -> JobSettings {
        JobSettings {
            job: "pyroscope.scrape.local".into(),
            scheme: "http".into(),
            params: BTreeMap::new(),
            interval: Duration::from_secs(interval),
            timeout: Duration::from_secs(15),
            profiles: ProfilingConfig::default()
                .profiles()
                .into_iter()
                .map(Arc::new)
                .collect(),
        }
    }

    #[test]
    fn default_profiles_urls_labels_and_timeouts() {
        let t = Labels::from_pairs([
            ("__address__", "localhost:4100"),
            ("service_name", "pyroscope"),
        ]);
        let tasks = tasks_for(&t, &job(15)).unwrap();
        let urls: Vec<_> = tasks.iter().map(|t| t.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "http://localhost:4100/debug/pprof/allocs",
                "http://localhost:4100/debug/pprof/block",
                "http://localhost:4100/debug/pprof/goroutine",
                "http://localhost:4100/debug/pprof/mutex",
                "http://localhost:4100/debug/pprof/profile?seconds=14",
            ]
        );
        assert_eq!(
            tasks[0].labels.to_string(),
            r#"{__delta__="false", __name__="memory", instance="localhost:4100", job="pyroscope.scrape.local", service_name="pyroscope"}"#
        );
        assert_eq!(
            tasks[2].labels.to_string(),
            r#"{__name__="goroutine", instance="localhost:4100", job="pyroscope.scrape.local", service_name="pyroscope"}"#
        );
        assert_eq!(tasks[2].timeout, Duration::from_secs(15));
        assert_eq!(tasks[4].timeout, Duration::from_secs(29));
        let keys: std::collections::HashSet<_> = tasks.iter().map(|t| t.key).collect();
        assert_eq!(keys.len(), 5);
        // Keys are stable.
        assert_eq!(tasks_for(&t, &job(15)).unwrap()[0].key, tasks[0].key);
    }

    #[test]
    fn ports_schemes_params_and_service_name_inference() {
        let mut j = job(15);
        j.params.insert("debug".into(), vec!["0".into()]);
        j.params
            .insert("a b".into(), vec!["x&y".into(), "z".into()]);
        let t = Labels::from_pairs([
            ("__address__", "example.com"),
            ("__scheme__", "https"),
            ("__param_debug", "1"),
            ("__meta_kubernetes_namespace", "ns"),
            ("__meta_kubernetes_pod_container_name", "app"),
        ]);
        let tasks = tasks_for(&t, &j).unwrap();
        assert_eq!(
            tasks[0].url,
            "https://example.com:443/debug/pprof/allocs?a+b=x%26y&a+b=z&debug=1"
        );
        assert_eq!(tasks[0].labels.get("service_name"), Some("ns/app"));
        assert_eq!(tasks[0].labels.get("instance"), Some("example.com:443"));
        assert!(tasks[0]
            .labels
            .iter()
            .all(|l| !l.name.starts_with("__meta")));
        let t = Labels::from_pairs([("__address__", "h"), ("__meta_docker_container_name", "c")]);
        let tasks = tasks_for(&t, &j).unwrap();
        assert_eq!(tasks[0].labels.get("service_name"), Some("c"));
        assert!(tasks[0].url.starts_with("http://h:80/"));
        let t = Labels::from_pairs([("__address__", "h:1"), ("job", "mine"), ("instance", "i")]);
        let tasks = tasks_for(&t, &j).unwrap();
        assert_eq!(tasks[0].labels.get("service_name"), Some("unspecified"));
        assert_eq!(tasks[0].labels.get("job"), Some("mine"));
        assert_eq!(tasks[0].labels.get("instance"), Some("i"));
        // The annotation wins over everything else.
        let t = Labels::from_pairs([
            ("__address__", "h:1"),
            (
                "__meta_kubernetes_pod_annotation_pyroscope_io_service_name",
                "annotated",
            ),
            ("__meta_docker_container_name", "c"),
        ]);
        assert_eq!(
            tasks_for(&t, &j).unwrap()[0].labels.get("service_name"),
            Some("annotated")
        );
        // A user's `seconds` wins; other profile types get no `seconds`.
        j.params.insert("seconds".into(), vec!["5".into()]);
        let tasks = tasks_for(&Labels::from_pairs([("__address__", "[::1]:9")]), &j).unwrap();
        assert!(
            tasks[4]
                .url
                .ends_with("/debug/pprof/profile?a+b=x%26y&a+b=z&debug=0&seconds=5"),
            "{}",
            tasks[4].url
        );
        assert!(
            tasks[0]
                .url
                .starts_with("http://[::1]:9/debug/pprof/allocs?"),
            "{}",
            tasks[0].url
        );
    }

    #[test]
    fn bad_targets_are_reported_alone() {
        let j = job(15);
        let err = tasks_for(&Labels::from_pairs([("service_name", "x")]), &j).unwrap_err();
        assert_eq!(err.error, "no address");
        assert_eq!(err.labels.get("service_name"), Some("x"));
        let err = tasks_for(
            &Labels::from_pairs([("__address__", "h"), ("__scheme__", "ftp")]),
            &j,
        )
        .unwrap_err();
        assert_eq!(err.error, "invalid scheme: \"ftp\"");
        let err = tasks_for(&Labels::from_pairs([("__address__", "h/x:1")]), &j).unwrap_err();
        assert_eq!(err.error, "\"h/x:1\" is not a valid hostname");
    }

    #[test]
    fn path_prefix_is_applied() {
        let mut cfg = ProfilingConfig {
            path_prefix: "/mount/".into(),
            ..ProfilingConfig::default()
        };
        cfg.custom.push(river::decode::LabeledBlock {
            label: "heap".into(),
            body: crate::args::CustomProfile {
                enabled: true,
                path: "debug/pprof/heap".into(),
                delta: false,
            },
        });
        let mut j = job(15);
        j.profiles = cfg.profiles().into_iter().map(Arc::new).collect();
        let tasks = tasks_for(&Labels::from_pairs([("__address__", "h:1")]), &j).unwrap();
        assert_eq!(tasks[0].url, "http://h:1/mount/debug/pprof/allocs");
        assert_eq!(tasks[5].url, "http://h:1/mount/debug/pprof/heap");
        assert_eq!(tasks[5].labels.get("__name__"), Some("heap"));
    }
}
