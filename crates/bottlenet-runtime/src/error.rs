//! The crate's one error type, and its single conversion to a gRPC status.

use tonic::{Code, Status};

/// Everything that can go wrong in the runtime, server or client side.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A wire frame that does not decode (bad magic, truncated, checksum, …).
    #[error("malformed frame: {0}")]
    Frame(#[from] bottlenet_codec::Error),
    /// A frame that decodes but does not have the feature shape the split expects.
    #[error("frame for split `{split}` has shape {got}, the split expects {expected}")]
    FrameShape {
        split: String,
        got: String,
        expected: String,
    },
    /// A frame whose header names another codec, quality or quantizer bits than the split's
    /// manifest (refused before its payload is decoded).
    #[error("frame for split `{split}` has {field} {got}, the split expects {expected}")]
    FrameMismatch {
        split: String,
        field: &'static str,
        got: String,
        expected: String,
    },
    /// An input image that cannot be used (bad JPEG, wrong size, …).
    #[error("invalid image: {0}")]
    InvalidImage(String),
    /// Any other bad argument in a request or a call.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("unknown model `{0}`")]
    UnknownModel(String),
    #[error("model `{model}` has no split `{split}`")]
    UnknownSplit { model: String, split: String },
    /// The server refused the call's credentials (missing or wrong bearer token).
    #[error("the server refused our credentials ({0}); give the token the server was started with")]
    Unauthenticated(String),
    /// The server queue holds `max_queue` requests already.
    #[error("server queue is full ({0} requests waiting)")]
    QueueFull(usize),
    #[error("message of {got} bytes exceeds the limit of {limit} bytes")]
    MessageTooLarge { got: usize, limit: usize },
    /// The request's deadline passed before it was served.
    #[error("deadline exceeded while queued")]
    DeadlineExceeded,
    /// The server is shutting down and takes no new work.
    #[error("server is shutting down")]
    ShuttingDown,
    /// The model implementation failed (or panicked) on a batch.
    #[error("model failed: {0}")]
    Model(String),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A status returned by the remote end.
    #[error("rpc failed: {}: {}", .0.code(), .0.message())]
    Rpc(#[from] Status),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl Error {
    /// Wraps any model-side error (the real model bundle's errors, a burn failure…).
    pub fn model(err: impl std::fmt::Display) -> Self {
        Error::Model(err.to_string())
    }
}

/// The one place where errors become gRPC statuses (STYLE: "convert errors in one place").
impl From<Error> for Status {
    fn from(err: Error) -> Status {
        let code = match &err {
            Error::Frame(_)
            | Error::FrameShape { .. }
            | Error::FrameMismatch { .. }
            | Error::InvalidImage(_)
            | Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::Unauthenticated(_) => Code::Unauthenticated,
            Error::UnknownModel(_) | Error::UnknownSplit { .. } => Code::NotFound,
            // gRPC status-code spec: an oversize request and an overload are both RESOURCE_EXHAUSTED.
            Error::QueueFull(_) | Error::MessageTooLarge { .. } => Code::ResourceExhausted,
            Error::DeadlineExceeded => Code::DeadlineExceeded,
            Error::ShuttingDown => Code::Unavailable,
            Error::Rpc(status) => return Status::new(status.code(), status.message()),
            Error::Model(_)
            | Error::Config(_)
            | Error::Io(_)
            | Error::Transport(_)
            | Error::Metrics(_) => Code::Internal,
        };
        Status::new(code, err.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_grpc_spec() {
        let frame_err = bottlenet_codec::decode(&[1, 2, 3]).expect_err("3 bytes are no frame");
        assert_eq!(
            Status::from(Error::Frame(frame_err)).code(),
            Code::InvalidArgument
        );
        assert_eq!(
            Status::from(Error::UnknownModel("m".into())).code(),
            Code::NotFound
        );
        let split = Error::UnknownSplit {
            model: "m".into(),
            split: "rb9".into(),
        };
        assert_eq!(Status::from(split).code(), Code::NotFound);
        assert_eq!(
            Status::from(Error::QueueFull(4)).code(),
            Code::ResourceExhausted
        );
        let big = Error::MessageTooLarge { got: 10, limit: 5 };
        assert_eq!(Status::from(big).code(), Code::ResourceExhausted);
        assert_eq!(
            Status::from(Error::DeadlineExceeded).code(),
            Code::DeadlineExceeded
        );
        assert_eq!(Status::from(Error::model("boom")).code(), Code::Internal);
        let mismatch = Error::FrameMismatch {
            split: "rb1".into(),
            field: "quality",
            got: "50".into(),
            expected: "20".into(),
        };
        assert_eq!(Status::from(mismatch).code(), Code::InvalidArgument);
        assert_eq!(
            Status::from(Error::Unauthenticated("wrong token".into())).code(),
            Code::Unauthenticated
        );
        let remote = Error::Rpc(Status::unavailable("down"));
        assert_eq!(Status::from(remote).code(), Code::Unavailable);
    }
}
