//! Which failures the phone answers alone for, and which it reports; where the phone's compute
//! runs.

use super::*;

#[test]
fn availability_errors_fall_back_configuration_errors_do_not() {
    for code in [
        Code::Unavailable,
        Code::ResourceExhausted,
        Code::DeadlineExceeded,
        Code::Cancelled,
    ] {
        assert!(server_unusable(code), "{code:?}");
    }
    for code in [
        Code::InvalidArgument,
        Code::NotFound,
        Code::Unauthenticated,
        Code::Unimplemented,
    ] {
        assert!(!server_unusable(code), "{code:?}");
    }
}

#[test]
fn server_faults_are_fallbacks_and_credential_refusals_are_not() {
    for code in [Code::Internal, Code::Unknown] {
        assert!(server_fault(code) && server_unusable(code), "{code:?}");
    }
    for code in [Code::Unavailable, Code::ResourceExhausted, Code::DeadlineExceeded] {
        assert!(!server_fault(code), "{code:?}");
    }
    for code in [Code::Unauthenticated, Code::PermissionDenied] {
        assert!(refuses_credentials(code) && !server_unusable(code), "{code:?}");
    }
}

/// On `runtime`: whether the phone's compute ran on the thread that awaited it, and that a
/// failure of the compute comes back as itself.
fn compute_stays_on_the_caller(runtime: &tokio::runtime::Runtime) -> bool {
    let (caller, worker) = runtime.block_on(async {
        let caller = std::thread::current().id();
        let worker = on_this_thread(|| Ok(std::thread::current().id())).await.expect("runs");
        (caller, worker)
    });
    let failed = runtime.block_on(on_this_thread(|| Err::<(), _>(Error::Model("head failed".into()))));
    assert!(matches!(failed, Err(Error::Model(m)) if m == "head failed"));
    caller == worker
}

#[test]
fn phone_compute_runs_on_the_calling_worker_of_a_multi_threaded_runtime() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("runtime");
    assert!(compute_stays_on_the_caller(&runtime), "the compute was handed to another thread");
}

#[test]
fn phone_compute_goes_to_the_blocking_pool_on_a_current_thread_runtime() {
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    assert!(!compute_stays_on_the_caller(&runtime), "blocking the only thread would stall the connection's I/O");
}
