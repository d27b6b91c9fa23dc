//! `clustering { enabled = true }`: only owned targets are scraped, re-filtered on membership changes.

mod common;

use common::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A cluster whose ownership the test decides: it owns the keys that contain one of `owned`.
#[derive(Debug, Default)]
struct FakeCluster {
    owned: Mutex<Vec<String>>,
    asked: Mutex<Vec<String>>,
}

impl flow::Cluster for FakeCluster {
    fn enabled(&self) -> bool {
        true
    }
    fn owns(&self, key: &[u8]) -> bool {
        let key = String::from_utf8_lossy(key).to_string();
        self.asked.lock().unwrap().push(key.clone());
        self.owned
            .lock()
            .unwrap()
            .iter()
            .any(|o| key.contains(o.as_str()))
    }
    fn peers(&self) -> Vec<flow::Peer> {
        Vec::new()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_owned_targets_are_scraped_and_a_membership_change_moves_them() {
    let (a, b) = (Target::go().await, Target::go().await);
    let cluster = Arc::new(FakeCluster::default());
    cluster.owned.lock().unwrap().push("\"a\"".into());
    let env = Env::with_cluster(cluster.clone());
    let config = format!(
        r#"
test.recorder "out" {{ key = "cluster" }}
pyroscope.scrape "c" {{
  targets         = [
    {{"__address__" = "{}", "service_name" = "a", "__meta_x" = "ignored"}},
    {{"__address__" = "{}", "service_name" = "b"}},
  ]
  forward_to      = [test.recorder.out.receiver]
  scrape_interval = "300ms"
  clustering {{
    enabled = true
  }}
  profiling_config {{
    profile.memory {{ enabled = false }}
    profile.block {{ enabled = false }}
    profile.mutex {{ enabled = false }}
    profile.process_cpu {{ enabled = false }}
  }}
}}
"#,
        a.address(),
        b.address()
    );
    env.load(&config).await;
    // Ownership is asked once per target (not per profile type), with the labels minus `__meta_*`.
    eventually(
        "ownership asked for both targets",
        Duration::from_secs(5),
        || cluster.asked.lock().unwrap().len() >= 2,
    )
    .await;
    eventually("a scraped", Duration::from_secs(5), || {
        a.hits_of("/debug/pprof/goroutine") >= 2
    })
    .await;
    // Several scrapes later, still two questions: one per target, not per scrape or profile type.
    let asked = cluster.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert_eq!(
        asked[0],
        format!(r#"{{__address__="{}", service_name="a"}}"#, a.address())
    );
    assert_eq!(b.hits_of("/debug/pprof/goroutine"), 0);
    assert_eq!(env.targets("pyroscope.scrape.c").len(), 1);

    // b moves to this node, a leaves.
    *cluster.owned.lock().unwrap() = vec!["\"b\"".into()];
    env.c.cluster_changed();
    eventually("b scraped", Duration::from_secs(5), || {
        b.hits_of("/debug/pprof/goroutine") >= 2
    })
    .await;
    let a_hits = a.hits_of("/debug/pprof/goroutine");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        a.hits_of("/debug/pprof/goroutine") <= a_hits + 1,
        "a still scraped"
    );
    let targets = env.targets("pyroscope.scrape.c");
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0]["labels"]["service_name"], "b");
    env.c.shutdown().await;
}
