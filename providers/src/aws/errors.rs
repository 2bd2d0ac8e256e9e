//! EC2 error classification: the SDK's error shapes → [`CloudError`] with the cloud's code
//! and message kept verbatim.

use std::fmt::Debug;

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::error::{CloudError, ErrorKind};

/// The class of an EC2 error code (and HTTP status when the code says nothing).
pub fn kind_of(code: &str, status: Option<u16>) -> ErrorKind {
    match code {
        "RequestLimitExceeded" | "Throttling" | "ThrottlingException" => ErrorKind::Throttled,
        "RouteLimitExceeded" => ErrorKind::QuotaExceeded,
        "RouteAlreadyExists" | "IncorrectState" => ErrorKind::Conflict,
        "InternalError" | "InternalFailure" | "ServiceUnavailable" | "Unavailable" => {
            ErrorKind::Transient
        }
        c if c.ends_with(".NotFound") => ErrorKind::NotFound,
        _ => match status {
            Some(503) => ErrorKind::Throttled,
            Some(s) if s >= 500 => ErrorKind::Transient,
            _ => ErrorKind::Permanent,
        },
    }
}

/// Classify any SDK error of one operation.
pub fn classify<E>(err: SdkError<E, HttpResponse>) -> CloudError
where
    E: ProvideErrorMetadata + Debug,
{
    match &err {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let code = err.code().unwrap_or("Unknown").to_owned();
            let message = err.message().unwrap_or_default().to_owned();
            CloudError::new(kind_of(&code, Some(status)), code, message).with_status(status)
        }
        SdkError::TimeoutError(_) => {
            CloudError::new(ErrorKind::Transient, "Timeout", "the EC2 call timed out")
        }
        SdkError::DispatchFailure(d) => CloudError::new(
            ErrorKind::Transient,
            "Connection",
            format!(
                "EC2 request could not be sent: {:?}",
                d.as_connector_error()
            ),
        ),
        SdkError::ResponseError(r) => {
            let status = r.raw().status().as_u16();
            CloudError::new(
                ErrorKind::Transient,
                "Connection",
                format!("EC2 response could not be read (HTTP {status})"),
            )
            .with_status(status)
        }
        SdkError::ConstructionFailure(_) => CloudError::new(
            ErrorKind::Permanent,
            "InvalidRequest",
            format!("EC2 request could not be built: {err:?}"),
        ),
        _ => CloudError::new(ErrorKind::Transient, "Unknown", format!("{err:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_kinds() {
        assert_eq!(
            kind_of("RequestLimitExceeded", Some(503)),
            ErrorKind::Throttled
        );
        assert_eq!(kind_of("Throttling", Some(400)), ErrorKind::Throttled);
        assert_eq!(
            kind_of("RouteLimitExceeded", Some(400)),
            ErrorKind::QuotaExceeded
        );
        assert_eq!(
            kind_of("InvalidRoute.NotFound", Some(400)),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind_of("InvalidRouteTableID.NotFound", Some(400)),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind_of("RouteAlreadyExists", Some(400)),
            ErrorKind::Conflict
        );
        assert_eq!(kind_of("InternalError", Some(500)), ErrorKind::Transient);
        assert_eq!(kind_of("Unavailable", Some(503)), ErrorKind::Transient);
        assert_eq!(kind_of("Whatever", Some(502)), ErrorKind::Transient);
        assert_eq!(kind_of("AuthFailure", Some(401)), ErrorKind::Permanent);
        assert_eq!(
            kind_of("UnauthorizedOperation", Some(403)),
            ErrorKind::Permanent
        );
        assert_eq!(
            kind_of("InvalidParameterValue", Some(400)),
            ErrorKind::Permanent
        );
    }
}
