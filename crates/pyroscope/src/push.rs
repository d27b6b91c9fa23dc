//! The Pyroscope push protocol: `push.v1.PusherService/Push` over Connect (unary, binary protobuf).
//!
//! The messages are generated from `proto/push/v1/push.proto` and `proto/types/v1/types.proto` by prost-build
//! (the `.proto` files are compiled with protox, so no `protoc` is needed) and checked in under `src/gen/`.
//! `tests/push_proto.rs` fails when they drift apart; regenerate with
//! `RILL_REGENERATE_PROTO=1 cargo test -p pyroscope --test push_proto`.
//!
//! Besides the messages, this module holds what both ends of the protocol agree on: the path, headers, the
//! Connect error codes with their HTTP mapping and which of them are worth retrying.

use crate::labels::Labels;
use std::fmt;

/// Generated protobuf messages, one module per protobuf package.
#[allow(missing_docs, clippy::all)]
pub mod proto {
    /// Package `push.v1`.
    pub mod push {
        /// Package `push.v1`.
        pub mod v1 {
            include!("gen/push.v1.rs");
        }
    }
    /// Package `types.v1`.
    pub mod types {
        /// Package `types.v1`.
        pub mod v1 {
            include!("gen/types.v1.rs");
        }
    }
}

pub use proto::push::v1::{PushRequest, PushResponse, RawProfileSeries, RawSample as PushSample};
pub use proto::types::v1::LabelPair;

/// The path of the unary Push procedure, appended to an endpoint URL.
pub const PUSH_PATH: &str = "/push.v1.PusherService/Push";
/// The content type of a unary Connect request or response with a binary protobuf body.
pub const CONTENT_TYPE_PROTO: &str = "application/proto";
/// The content type of a Connect error body.
pub const CONTENT_TYPE_JSON: &str = "application/json";
/// The header naming the Connect protocol version (always `1`).
pub const PROTOCOL_VERSION_HEADER: &str = "connect-protocol-version";
/// The header carrying the client's deadline in milliseconds.
pub const TIMEOUT_HEADER: &str = "connect-timeout-ms";

/// Labels as the protocol carries them (sorted by name, as [`Labels`] keeps them).
pub fn label_pairs(labels: &Labels) -> Vec<LabelPair> {
    labels
        .iter()
        .map(|l| LabelPair {
            name: l.name.to_string(),
            value: l.value.to_string(),
        })
        .collect()
}

/// Labels from the protocol's pairs (a later pair with the same name wins).
pub fn labels_from_pairs(pairs: &[LabelPair]) -> Labels {
    Labels::from_pairs(pairs.iter().map(|p| (p.name.as_str(), p.value.as_str())))
}

/// A Connect error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// `canceled`
    Canceled,
    /// `unknown`
    Unknown,
    /// `invalid_argument`
    InvalidArgument,
    /// `deadline_exceeded`
    DeadlineExceeded,
    /// `not_found`
    NotFound,
    /// `already_exists`
    AlreadyExists,
    /// `permission_denied`
    PermissionDenied,
    /// `resource_exhausted`
    ResourceExhausted,
    /// `failed_precondition`
    FailedPrecondition,
    /// `aborted`
    Aborted,
    /// `out_of_range`
    OutOfRange,
    /// `unimplemented`
    Unimplemented,
    /// `internal`
    Internal,
    /// `unavailable`
    Unavailable,
    /// `data_loss`
    DataLoss,
    /// `unauthenticated`
    Unauthenticated,
}

const ALL_CODES: [Code; 16] = [
    Code::Canceled,
    Code::Unknown,
    Code::InvalidArgument,
    Code::DeadlineExceeded,
    Code::NotFound,
    Code::AlreadyExists,
    Code::PermissionDenied,
    Code::ResourceExhausted,
    Code::FailedPrecondition,
    Code::Aborted,
    Code::OutOfRange,
    Code::Unimplemented,
    Code::Internal,
    Code::Unavailable,
    Code::DataLoss,
    Code::Unauthenticated,
];

impl Code {
    /// The wire spelling, e.g. `unavailable`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Canceled => "canceled",
            Code::Unknown => "unknown",
            Code::InvalidArgument => "invalid_argument",
            Code::DeadlineExceeded => "deadline_exceeded",
            Code::NotFound => "not_found",
            Code::AlreadyExists => "already_exists",
            Code::PermissionDenied => "permission_denied",
            Code::ResourceExhausted => "resource_exhausted",
            Code::FailedPrecondition => "failed_precondition",
            Code::Aborted => "aborted",
            Code::OutOfRange => "out_of_range",
            Code::Unimplemented => "unimplemented",
            Code::Internal => "internal",
            Code::Unavailable => "unavailable",
            Code::DataLoss => "data_loss",
            Code::Unauthenticated => "unauthenticated",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(text: &str) -> Option<Code> {
        ALL_CODES.into_iter().find(|c| c.as_str() == text)
    }

    /// The HTTP status a server answers with for this code (Connect protocol mapping).
    pub fn http_status(self) -> u16 {
        match self {
            Code::Canceled => 499,
            Code::Unknown | Code::Internal | Code::DataLoss => 500,
            Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
            Code::DeadlineExceeded => 504,
            Code::NotFound => 404,
            Code::AlreadyExists | Code::Aborted => 409,
            Code::PermissionDenied => 403,
            Code::ResourceExhausted => 429,
            Code::Unimplemented => 501,
            Code::Unavailable => 503,
            Code::Unauthenticated => 401,
        }
    }

    /// The code a client infers from an HTTP status when the body is not a Connect error.
    pub fn from_http_status(status: u16) -> Code {
        match status {
            400 => Code::Internal,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 => Code::Unimplemented,
            429 | 502 | 503 | 504 => Code::Unavailable,
            _ => Code::Unknown,
        }
    }

    /// Whether a request that failed with this code is worth sending again.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Code::DeadlineExceeded
                | Code::Unknown
                | Code::ResourceExhausted
                | Code::Internal
                | Code::Unavailable
                | Code::DataLoss
                | Code::Aborted
        )
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Connect error as carried in a JSON body: `{"code": "...", "message": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ConnectError {
    /// The code.
    pub code: Code,
    /// What went wrong, for people.
    pub message: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct WireError {
    code: String,
    #[serde(default)]
    message: String,
}

impl ConnectError {
    /// An error with this code and message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ConnectError {
            code,
            message: message.into(),
        }
    }

    /// The JSON body a server sends.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&WireError {
            code: self.code.as_str().to_string(),
            message: self.message.clone(),
        })
        .unwrap_or_else(|_| format!("{{\"code\":\"{}\"}}", self.code))
    }

    /// Parses a JSON error body; `None` when the body is not a Connect error (e.g. a proxy's HTML page).
    pub fn from_json(body: &[u8]) -> Option<ConnectError> {
        let wire: WireError = serde_json::from_slice(body).ok()?;
        Some(ConnectError {
            code: Code::parse(&wire.code)?,
            message: wire.message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn codes_round_trip_and_map_to_http() {
        for c in ALL_CODES {
            assert_eq!(Code::parse(c.as_str()), Some(c));
        }
        assert_eq!(Code::parse("nope"), None);
        assert_eq!(Code::Unavailable.http_status(), 503);
        assert_eq!(Code::InvalidArgument.http_status(), 400);
        assert_eq!(Code::from_http_status(400), Code::Internal);
        assert_eq!(Code::from_http_status(404), Code::Unimplemented);
        assert_eq!(Code::from_http_status(429), Code::Unavailable);
        assert_eq!(Code::from_http_status(418), Code::Unknown);
        assert!(Code::Unavailable.is_retryable());
        assert!(!Code::InvalidArgument.is_retryable());
        assert!(!Code::Unauthenticated.is_retryable());
    }

    #[test]
    fn errors_round_trip_through_json() {
        let e = ConnectError::new(Code::ResourceExhausted, "slow down \"now\"");
        assert_eq!(ConnectError::from_json(e.to_json().as_bytes()), Some(e));
        assert_eq!(ConnectError::from_json(b"<html>"), None);
        assert_eq!(ConnectError::from_json(br#"{"code":"bogus"}"#), None);
    }

    #[test]
    fn push_request_field_numbers_match_the_protocol() {
        let req = PushRequest {
            series: vec![RawProfileSeries {
                labels: vec![LabelPair {
                    name: "a".into(),
                    value: "b".into(),
                }],
                samples: vec![PushSample {
                    raw_profile: bytes::Bytes::from_static(b"P"),
                    id: "u".into(),
                }],
            }],
        };
        let bytes = req.encode_to_vec();
        // series (field 1, length-delimited) { labels (1) { name (1) "a", value (2) "b" }, samples (2) {
        // raw_profile (1) "P", ID (2) "u" } }
        let expected = [
            0x0a, 16, 0x0a, 6, 0x0a, 1, b'a', 0x12, 1, b'b', 0x12, 6, 0x0a, 1, b'P', 0x12, 1, b'u',
        ];
        assert_eq!(bytes, expected);
        assert_eq!(PushRequest::decode(&bytes[..]).unwrap(), req);
    }

    #[test]
    fn labels_convert_both_ways_sorted() {
        let l = Labels::from_pairs([("z", "1"), ("a", "2")]);
        let pairs = label_pairs(&l);
        assert_eq!(pairs[0].name, "a");
        assert_eq!(labels_from_pairs(&pairs), l);
    }
}
