//! The receiver that `forward_to` lists carry.

use crate::labels::Labels;
use async_trait::async_trait;
use bytes::Bytes;
use river::CapsuleValue;
use std::fmt;
use std::sync::Arc;

/// One profile as received: pprof bytes, gzip-compressed or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawSample {
    /// The pprof protobuf, possibly gzip-compressed.
    pub raw_profile: Bytes,
}

impl RawSample {
    /// A sample of these bytes.
    pub fn new(raw_profile: impl Into<Bytes>) -> Self {
        RawSample {
            raw_profile: raw_profile.into(),
        }
    }
}

/// Why an append failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// The receiver refused the profile for good (e.g. no `service_name`); retrying will not help.
    #[error("rejected: {0}")]
    Rejected(String),
    /// The receiver could not take it now (queue full, disk error); the sender may retry later.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl AppendError {
    /// Whether retrying the same append later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, AppendError::Unavailable(_))
    }
}

/// Something that takes profiles. Implementations must not block for long: queue and return.
#[async_trait]
pub trait Appender: Send + Sync + 'static {
    /// Takes the profiles of one series.
    async fn append(&self, labels: Labels, samples: Vec<RawSample>) -> Result<(), AppendError>;
}

/// A shared appender, as a River capsule (`pyroscope.Appendable`). Two receivers are equal when they are the
/// same appender, so a component that re-exports the same receiver does not trigger re-evaluations.
#[derive(Clone)]
pub struct Receiver {
    appender: Arc<dyn Appender>,
    /// Who exported it (a component ID), for messages and debug output.
    owner: Arc<str>,
}

impl Receiver {
    /// A receiver around an appender, exported by `owner`.
    pub fn new(owner: &str, appender: Arc<dyn Appender>) -> Self {
        Receiver {
            appender,
            owner: Arc::from(owner),
        }
    }

    /// Who exported it.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Sends profiles to it.
    pub async fn append(&self, labels: Labels, samples: Vec<RawSample>) -> Result<(), AppendError> {
        self.appender.append(labels, samples).await
    }
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Receiver({})", self.owner)
    }
}

impl PartialEq for Receiver {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.appender, &other.appender)
    }
}

impl CapsuleValue for Receiver {
    fn type_name(&self) -> &str {
        "pyroscope.Appendable"
    }
    fn capsule_eq(&self, other: &dyn CapsuleValue) -> bool {
        other
            .as_any()
            .downcast_ref::<Receiver>()
            .is_some_and(|o| o == self)
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Why sending to some of the receivers failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} of {total} receivers failed: {}", failures.len(), describe(failures))]
pub struct FanoutError {
    /// How many receivers were sent to.
    pub total: usize,
    /// `(receiver owner, error)` for each failure.
    pub failures: Vec<(String, AppendError)>,
}

impl FanoutError {
    /// Whether every failure may succeed on retry.
    pub fn is_retryable(&self) -> bool {
        self.failures.iter().all(|(_, e)| e.is_retryable())
    }
}

fn describe(failures: &[(String, AppendError)]) -> String {
    failures
        .iter()
        .map(|(owner, e)| format!("{owner}: {e}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Sends one series to every receiver concurrently. Each receiver gets the batch even when others fail.
pub async fn fanout(
    receivers: &[Receiver],
    labels: &Labels,
    samples: &[RawSample],
) -> Result<(), FanoutError> {
    // The usual single receiver, without join_all's allocations.
    if let [r] = receivers {
        return match r.append(labels.clone(), samples.to_vec()).await {
            Ok(()) => Ok(()),
            Err(e) => Err(FanoutError {
                total: 1,
                failures: vec![(r.owner().to_string(), e)],
            }),
        };
    }
    let sends = receivers
        .iter()
        .map(|r| async move { (r, r.append(labels.clone(), samples.to_vec()).await) });
    let results = futures_util::future::join_all(sends).await;
    let failures: Vec<(String, AppendError)> = results
        .into_iter()
        .filter_map(|(r, res)| res.err().map(|e| (r.owner().to_string(), e)))
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(FanoutError {
            total: receivers.len(),
            failures,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder {
        got: Mutex<Vec<(Labels, Vec<RawSample>)>>,
        fail: Option<AppendError>,
    }

    #[async_trait]
    impl Appender for Recorder {
        async fn append(&self, labels: Labels, samples: Vec<RawSample>) -> Result<(), AppendError> {
            self.got.lock().unwrap().push((labels, samples));
            match &self.fail {
                Some(e) => Err(e.clone()),
                None => Ok(()),
            }
        }
    }

    #[tokio::test]
    async fn fanout_reaches_every_receiver_and_reports_failures() {
        let ok = Arc::new(Recorder::default());
        let bad = Arc::new(Recorder {
            fail: Some(AppendError::Unavailable("queue full".into())),
            ..Recorder::default()
        });
        let receivers = [
            Receiver::new("pyroscope.write.a", ok.clone()),
            Receiver::new("pyroscope.write.b", bad.clone()),
        ];
        let labels = Labels::from_pairs([("service_name", "svc")]);
        let err = fanout(&receivers, &labels, &[RawSample::new(&b"x"[..])])
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "1 of 2 receivers failed: pyroscope.write.b: unavailable: queue full"
        );
        assert!(err.is_retryable());
        assert_eq!(ok.got.lock().unwrap().len(), 1);
        assert_eq!(bad.got.lock().unwrap()[0].0, labels);
    }

    #[test]
    fn receivers_compare_by_appender_identity() {
        let a: Arc<dyn Appender> = Arc::new(Recorder::default());
        let r1 = Receiver::new("x", a.clone());
        let r2 = Receiver::new("x", a);
        let r3 = Receiver::new("x", Arc::new(Recorder::default()));
        assert_eq!(r1, r2);
        assert_ne!(r1, r3);
        let c1 = river::Capsule::new(r1);
        assert_eq!(c1, river::Capsule::new(r2));
        assert_ne!(c1, river::Capsule::new(r3));
    }
}
