//! The server's side of `InferStream`: one long-lived stream per phone, one small message per
//! image (DESIGN §1: a fresh request per image pays its HTTP/2 headers every time).
//!
//! Every message goes through exactly what a unary `Infer` goes through ([`Shared::run`]):
//! size limit, the frame header checked against the split before anything is decoded, the
//! queue bound, and a deadline — per message, counted from its arrival, as the stream's
//! `bottlenet-timeout-ms` says. The bearer token is checked once, when the stream opens (the
//! interceptor sees the stream's headers; nothing can join an authenticated stream later). A
//! message that fails is answered with its own error and the stream goes on; only a message
//! that cannot be parsed at all (larger than the limit plus the envelope, not protobuf) ends
//! the stream, with that status.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataMap;
use tonic::{Status, Streaming};

use crate::error::{Error, Result};
use crate::model::CLOUD_ONLY;
use crate::proto::{StreamReply, StreamRequest};
use crate::server::Shared;

/// Stream-open metadata: the model every message is for.
pub const MODEL_HEADER: &str = "bottlenet-model";
/// Stream-open metadata: classes per answer (default: the server's, 5).
pub const TOP_K_HEADER: &str = "bottlenet-top-k";
/// Stream-open metadata: each message's deadline in ms from its arrival (default: none).
pub const TIMEOUT_HEADER: &str = "bottlenet-timeout-ms";

/// Replies buffered per stream before the per-message tasks wait for the phone to read.
const REPLY_BUFFER: usize = 64;

pub(crate) type ReplyStream = ReceiverStream<std::result::Result<StreamReply, Status>>;

/// What a stream's opening headers say.
#[derive(Debug, Clone)]
struct Opened {
    model: String,
    top_k: u32,
    timeout: Option<Duration>,
}

fn header<'a>(metadata: &'a MetadataMap, name: &str) -> Result<Option<&'a str>> {
    metadata
        .get(name)
        .map(|v| v.to_str().map_err(|_| Error::InvalidArgument(format!("stream header {name} is not ASCII"))))
        .transpose()
}

fn number(metadata: &MetadataMap, name: &str) -> Result<Option<u64>> {
    header(metadata, name)?
        .map(|v| v.trim().parse::<u64>().map_err(|_| Error::InvalidArgument(format!("stream header {name} must be a whole number, got `{v}`"))))
        .transpose()
}

impl Opened {
    fn from_metadata(metadata: &MetadataMap) -> Result<Opened> {
        let model = header(metadata, MODEL_HEADER)?
            .ok_or_else(|| Error::InvalidArgument(format!("a stream names its model in the {MODEL_HEADER} header")))?
            .to_string();
        let top_k = u32::try_from(number(metadata, TOP_K_HEADER)?.unwrap_or(0)).unwrap_or(u32::MAX);
        let timeout = number(metadata, TIMEOUT_HEADER)?.map(Duration::from_millis);
        Ok(Opened { model, top_k, timeout })
    }
}

/// Opens the reply stream of one phone's `InferStream` and starts reading its messages.
pub(crate) fn open(shared: Arc<Shared>, metadata: &MetadataMap, inbound: Streaming<StreamRequest>) -> Result<ReplyStream> {
    let opened = Opened::from_metadata(metadata)?;
    // An unknown model is refused at open, not once per message.
    shared.resolve(&opened.model, CLOUD_ONLY)?;
    let (tx, rx) = mpsc::channel(REPLY_BUFFER);
    tokio::spawn(read(shared, opened, inbound, tx));
    Ok(ReceiverStream::new(rx))
}

/// Reads messages until the phone closes its side, the stream breaks or the server shuts
/// down; each message is served on its own task so that messages in flight batch together.
/// The reply stream ends once every message read has been answered (every task holds a
/// sender).
async fn read(
    shared: Arc<Shared>,
    opened: Opened,
    mut inbound: Streaming<StreamRequest>,
    tx: mpsc::Sender<std::result::Result<StreamReply, Status>>,
) {
    let mut closing = shared.closing.subscribe();
    let mut last_split: Option<String> = None;
    loop {
        let next = tokio::select! {
            next = inbound.message() => next,
            // Graceful shutdown: stop reading, answer what was read, end the stream.
            _ = closing.wait_for(|c| *c) => return,
        };
        let message = match next {
            Ok(Some(message)) => message,
            Ok(None) => return,
            Err(status) => {
                let _ = tx.send(Err(status)).await;
                return;
            }
        };
        let received = Instant::now();
        if !message.split.is_empty() {
            last_split = Some(message.split.clone());
        }
        let (shared, opened, tx, split) = (Arc::clone(&shared), opened.clone(), tx.clone(), last_split.clone());
        tokio::spawn(async move {
            let reply = serve_one(&shared, &opened, split.as_deref(), message, received).await;
            let _ = tx.send(Ok(reply)).await;
        });
    }
}

/// One message, as [`Shared::run`] serves a unary request; its failure becomes its reply.
async fn serve_one(shared: &Shared, opened: &Opened, split: Option<&str>, message: StreamRequest, received: Instant) -> StreamReply {
    let request_id = message.request_id;
    let deadline = opened.timeout.map(|t| received + t);
    let result = match split {
        Some(split) => shared
            .run(&opened.model, split, message.payload, deadline, request_id, opened.top_k)
            .await
            .map_err(Status::from),
        None => Err(Status::from(Error::InvalidArgument(
            "the first message on a stream must name its split".into(),
        ))),
    };
    shared.count(&opened.model, split.unwrap_or_default(), result.as_ref().map(|_| ()));
    match result {
        Ok(reply) => StreamReply { request_id, reply: Some(reply), error_code: 0, error_message: String::new() },
        Err(status) => StreamReply {
            request_id,
            reply: None,
            error_code: status.code() as u32,
            error_message: status.message().to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_headers_parse_and_bad_ones_are_named() {
        let mut m = MetadataMap::new();
        assert!(Opened::from_metadata(&m).expect_err("no model").to_string().contains(MODEL_HEADER));
        m.insert(MODEL_HEADER, "fake".parse().expect("ascii"));
        let o = Opened::from_metadata(&m).expect("model only");
        assert_eq!((o.model.as_str(), o.top_k, o.timeout), ("fake", 0, None));
        m.insert(TOP_K_HEADER, "3".parse().expect("ascii"));
        m.insert(TIMEOUT_HEADER, "250".parse().expect("ascii"));
        let o = Opened::from_metadata(&m).expect("all");
        assert_eq!((o.top_k, o.timeout), (3, Some(Duration::from_millis(250))));
        m.insert(TIMEOUT_HEADER, "soon".parse().expect("ascii"));
        let err = Opened::from_metadata(&m).expect_err("bad timeout").to_string();
        assert!(err.contains(TIMEOUT_HEADER) && err.contains("soon"), "{err}");
    }
}
