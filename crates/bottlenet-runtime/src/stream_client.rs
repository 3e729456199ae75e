//! The phone's side of `InferStream`: one long-lived stream to the server, opened on the first
//! image and reopened after it breaks, so that an image costs one small message instead of a
//! request with its own HTTP/2 headers (DESIGN §1).
//!
//! Invariants: messages leave in the order they are queued, under the lock that decides
//! whether a message repeats its split (a message names its split only when it differs from
//! the previous one on the stream); every queued message gets exactly one outcome — its
//! reply, its own error, or the stream's failure — or its caller's timeout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::{Code, Request, Status};

use crate::link::{Rpc, lock};
use crate::proto::{InferReply, StreamReply, StreamRequest};
use crate::server_stream::{MODEL_HEADER, TIMEOUT_HEADER, TOP_K_HEADER};

type Outcome = std::result::Result<InferReply, Status>;

/// One open stream.
struct Open {
    tx: mpsc::UnboundedSender<StreamRequest>,
    state: Mutex<OpenState>,
}

#[derive(Default)]
struct OpenState {
    last_split: Option<String>,
    pending: HashMap<u64, oneshot::Sender<Outcome>>,
    /// Set once the stream ended or failed: why (UNAVAILABLE unless the server said more).
    broken: Option<Status>,
}

/// What one image's trip over the stream came to.
pub(crate) enum Sent {
    Reply(Outcome),
    /// The server has no `InferStream` (an older server): the payload, for a unary request.
    Unsupported(Vec<u8>),
}

/// What every stream of a client declares when it opens.
#[derive(Debug, Clone)]
pub(crate) struct StreamSettings {
    pub model: String,
    pub top_k: u32,
    /// Each message's deadline (server side, from its arrival); the client waits as long.
    pub timeout: Duration,
}

/// The client's stream, opened lazily.
pub(crate) struct StreamLink {
    settings: StreamSettings,
    current: tokio::sync::Mutex<Option<Arc<Open>>>,
    unsupported: AtomicBool,
}

impl std::fmt::Debug for StreamLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamLink")
            .field("settings", &self.settings)
            .field("unsupported", &self.unsupported.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// A stream-level failure as the phone sees it: the server went away (UNAVAILABLE), unless
/// the status says it refused us (credentials, limits), which the caller must see as such.
fn stream_failure(status: Status) -> Status {
    match status.code() {
        Code::Unauthenticated | Code::PermissionDenied | Code::ResourceExhausted | Code::InvalidArgument | Code::NotFound => status,
        _ => Status::unavailable(format!("the stream to the server broke: {}", status.message())),
    }
}

fn reply_outcome(reply: StreamReply) -> Outcome {
    match reply.reply {
        Some(r) if reply.error_code == 0 => Ok(r),
        _ => {
            let code = match reply.error_code {
                0 => Code::Internal,
                c => Code::from(i32::try_from(c).unwrap_or(i32::from(Code::Unknown))),
            };
            let message = if reply.error_code == 0 { "the server answered with neither a reply nor an error".to_string() } else { reply.error_message };
            Err(Status::new(code, message))
        }
    }
}

impl StreamLink {
    pub fn new(settings: StreamSettings) -> Self {
        StreamLink { settings, current: tokio::sync::Mutex::new(None), unsupported: AtomicBool::new(false) }
    }

    /// False once the server said it has no `InferStream`.
    pub fn usable(&self) -> bool {
        !self.unsupported.load(Ordering::Relaxed)
    }

    /// Sends one image and waits for its answer, at most the stream's timeout.
    pub async fn call(&self, rpc: &Rpc, request_id: u64, split: &str, payload: Vec<u8>) -> Sent {
        let open = match self.stream(rpc).await {
            Ok(open) => open,
            Err(status) if status.code() == Code::Unimplemented => {
                tracing::info!("the server has no InferStream; sending one request per image");
                self.unsupported.store(true, Ordering::Relaxed);
                return Sent::Unsupported(payload);
            }
            Err(status) => return Sent::Reply(Err(status)),
        };
        let (reply_tx, reply_rx) = oneshot::channel();
        {
            let mut state = lock(&open.state);
            if let Some(status) = &state.broken {
                return Sent::Reply(Err(status.clone()));
            }
            let name = if state.last_split.as_deref() == Some(split) { String::new() } else { split.to_string() };
            if open.tx.send(StreamRequest { request_id, split: name, payload }).is_err() {
                let status = Status::unavailable("the stream to the server is closed");
                state.broken = Some(status.clone());
                return Sent::Reply(Err(status));
            }
            state.last_split = Some(split.to_string());
            state.pending.insert(request_id, reply_tx);
        }
        let outcome = match tokio::time::timeout(self.settings.timeout, reply_rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(Status::unavailable("the stream to the server ended without an answer")),
            Err(_) => {
                lock(&open.state).pending.remove(&request_id);
                Err(Status::deadline_exceeded("no answer within the request timeout"))
            }
        };
        Sent::Reply(outcome)
    }

    /// The open stream, opening one when there is none or the last one broke.
    async fn stream(&self, rpc: &Rpc) -> std::result::Result<Arc<Open>, Status> {
        let mut current = self.current.lock().await;
        if let Some(open) = current.as_ref()
            && lock(&open.state).broken.is_none()
        {
            return Ok(Arc::clone(open));
        }
        *current = None;
        let open = self.open(rpc).await?;
        *current = Some(Arc::clone(&open));
        Ok(open)
    }

    async fn open(&self, rpc: &Rpc) -> std::result::Result<Arc<Open>, Status> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut request = Request::new(UnboundedReceiverStream::new(rx));
        let s = &self.settings;
        let metadata = request.metadata_mut();
        let value = |v: String| MetadataValue::try_from(v).map_err(|_| Status::invalid_argument("a stream header is not ASCII"));
        metadata.insert(MODEL_HEADER, value(s.model.clone())?);
        metadata.insert(TOP_K_HEADER, value(s.top_k.to_string())?);
        metadata.insert(TIMEOUT_HEADER, value(s.timeout.as_millis().to_string())?);
        let opened = tokio::time::timeout(s.timeout, rpc.clone().infer_stream(request))
            .await
            .map_err(|_| Status::deadline_exceeded("the server did not open the stream within the request timeout"))?
            .map_err(stream_failure)?;
        let mut inbound = opened.into_inner();
        let open = Arc::new(Open { tx, state: Mutex::new(OpenState::default()) });
        let reader = Arc::clone(&open);
        tokio::spawn(async move {
            let why = loop {
                match inbound.message().await {
                    Ok(Some(reply)) => {
                        let waiting = lock(&reader.state).pending.remove(&reply.request_id);
                        if let Some(waiting) = waiting {
                            let _ = waiting.send(reply_outcome(reply));
                        }
                    }
                    Ok(None) => break Status::unavailable("the server closed the stream"),
                    Err(status) => break stream_failure(status),
                }
            };
            tracing::debug!(code = ?why.code(), message = why.message(), "stream ended");
            let mut state = lock(&reader.state);
            for (_, waiting) in state.pending.drain() {
                let _ = waiting.send(Err(why.clone()));
            }
            state.broken = Some(why);
        });
        Ok(open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_errors_keep_their_code_and_stream_breaks_are_unavailable() {
        let err = reply_outcome(StreamReply { request_id: 1, reply: None, error_code: Code::InvalidArgument as u32, error_message: "bad frame".into() });
        let status = err.expect_err("an error");
        assert_eq!((status.code(), status.message()), (Code::InvalidArgument, "bad frame"));
        let empty = reply_outcome(StreamReply { request_id: 1, reply: None, error_code: 0, error_message: String::new() });
        assert_eq!(empty.expect_err("neither").code(), Code::Internal);
        assert_eq!(stream_failure(Status::unknown("h2 reset")).code(), Code::Unavailable);
        assert_eq!(stream_failure(Status::unauthenticated("no token")).code(), Code::Unauthenticated);
    }
}
