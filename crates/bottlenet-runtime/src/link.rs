//! What the phone believes about the server: up or down, when to probe it again (paper §3.4:
//! "periodically pinging the server"), and whether it refused our credentials — a refusal the
//! phone must report, never hide behind answering alone.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use crate::auth::BearerToken;
use crate::error::Result;
use crate::policy::{Observation, SplitLoad, SplitPolicy};
use crate::proto::bottle_net_client::BottleNetClient;
use crate::proto::{StatusReply, StatusRequest};

pub(crate) type Rpc = BottleNetClient<InterceptedService<Channel, BearerToken>>;
pub(crate) type SharedPolicy = Arc<Mutex<Box<dyn SplitPolicy>>>;

/// What the client believes about the server.
#[derive(Debug)]
pub(crate) struct Link {
    pub up: bool,
    pub requests_since_probe: u32,
    pub last_probe: Instant,
    pub probing: bool,
    /// Set when the last probe was refused for its credentials (the server's message).
    pub refused: Option<String>,
    /// Why the server was last found unusable: the gRPC code of the failed probe or request
    /// (RESOURCE_EXHAUSTED for a full queue, NOT_FOUND for a server without the model).
    pub last_failure: Option<Code>,
}

impl Link {
    pub fn new() -> Self {
        Link {
            up: false,
            requests_since_probe: 0,
            last_probe: Instant::now(),
            probing: false,
            refused: None,
            last_failure: None,
        }
    }
}

pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Codes by which a server refuses who we are: a configuration error, never a reason to answer
/// on the phone.
pub(crate) fn refuses_credentials(code: Code) -> bool {
    matches!(code, Code::Unauthenticated | Code::PermissionDenied)
}

/// The splits a status reply says the server holds for `model` (cloud-only excluded).
pub(crate) fn served_splits(status: &StatusReply, model: &str) -> Option<Vec<String>> {
    let m = status.models.iter().find(|m| m.model == model)?;
    Some(
        m.splits
            .iter()
            .map(|s| s.split.clone())
            .filter(|s| s != crate::model::CLOUD_ONLY)
            .collect(),
    )
}

/// A split idle longer than this reports history, not the server's state now (the server's
/// smoothing forgets such a gap: batcher.rs, `RouteLoad`).
const FRESH_LOAD: Duration = Duration::from_secs(1);

/// The loads a status reports for `model` from splits in recent use (`idle_ms` at most
/// [`FRESH_LOAD`]; a server from before `idle_ms` sends 0 and is taken at its word).
pub(crate) fn fresh_loads(status: &StatusReply, model: &str) -> Vec<SplitLoad> {
    let fresh_ms = FRESH_LOAD.as_millis() as u64;
    status
        .models
        .iter()
        .find(|m| m.model == model)
        .map(|m| {
            m.splits
                .iter()
                .filter(|s| s.idle_ms <= fresh_ms)
                .filter_map(|s| SplitLoad::from_reported(&s.split, s.smoothed_service_us, s.smoothed_queue_us))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) async fn probe(
    rpc: &Rpc,
    model: &str,
    timeout: Duration,
    link: &Mutex<Link>,
    policy: Option<SharedPolicy>,
) -> Result<StatusReply> {
    let mut req = Request::new(StatusRequest::default());
    req.set_timeout(timeout);
    let result = tokio::time::timeout(timeout, rpc.clone().status(req))
        .await
        .unwrap_or_else(|_| Err(Status::deadline_exceeded("status probe timed out")))
        .map(tonic::Response::into_inner);
    let healthy = result
        .as_ref()
        .is_ok_and(|s| s.queue_depth < s.max_queue && s.models.iter().any(|m| m.model == model));
    {
        let mut l = lock(link);
        l.refused = match &result {
            Err(status) if refuses_credentials(status.code()) => {
                Some(status.message().to_string())
            }
            _ => None,
        };
        l.up = healthy;
        if !healthy {
            l.last_failure = Some(match &result {
                Err(status) => status.code(),
                Ok(s) if s.queue_depth >= s.max_queue => Code::ResourceExhausted,
                Ok(_) => Code::NotFound,
            });
        }
        l.probing = false;
        l.last_probe = Instant::now();
        l.requests_since_probe = 0;
    }
    if let Some(p) = policy {
        let mut obs = Observation {
            reachable: healthy,
            ..Observation::default()
        };
        if let Ok(status) = &result {
            obs.queue_depth = Some(status.queue_depth);
            obs.loads = fresh_loads(status, model);
        }
        lock(&p).observe(&obs);
    }
    Ok(result?)
}
