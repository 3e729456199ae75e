//! Which failures the phone answers alone for, and which it reports.

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
