//! Statuses with stable codes: every error the service answers carries a
//! `google.rpc.ErrorInfo` whose `reason` is a stable upper-case code (domain `dipdrg`), next to
//! the field violations of an invalid argument. Clients branch on the code, never on the text.

use std::collections::HashMap;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo.domain` of every coded status.
pub const DOMAIN: &str = "dipdrg";

/// A status with `reason` in its ErrorInfo.
pub fn coded(code: Code, reason: &str, message: impl Into<String>) -> Status {
    with_metadata(code, reason, message, HashMap::new())
}

/// A status with `reason` and `metadata` in its ErrorInfo.
pub fn with_metadata(code: Code, reason: &str, message: impl Into<String>, metadata: HashMap<String, String>) -> Status {
    let mut details = ErrorDetails::new();
    details.set_error_info(reason, DOMAIN, metadata);
    Status::with_error_details(code, message, details)
}

/// INVALID_ARGUMENT with `reason` and one field violation.
pub fn invalid_field(reason: &str, field: &str, description: impl Into<String>) -> Status {
    let description = description.into();
    let mut details = ErrorDetails::new();
    details.set_error_info(reason, DOMAIN, HashMap::new());
    details.add_bad_request_violation(field, description.clone());
    Status::with_error_details(Code::InvalidArgument, format!("{field}: {description}"), details)
}

/// The longest `request_id` accepted (characters).
pub const MAX_REQUEST_ID_CHARS: usize = 128;

/// A `request_id` must be at most [`MAX_REQUEST_ID_CHARS`] characters without control
/// characters: INVALID_ARGUMENT (`BAD_REQUEST_ID`) otherwise.
pub fn check_request_id(request_id: &str) -> Result<(), Status> {
    if request_id.chars().count() > MAX_REQUEST_ID_CHARS {
        return Err(invalid_field("BAD_REQUEST_ID", "request_id", format!("is longer than {MAX_REQUEST_ID_CHARS} characters")));
    }
    if request_id.chars().any(char::is_control) {
        return Err(invalid_field("BAD_REQUEST_ID", "request_id", "contains a control character"));
    }
    Ok(())
}

/// A decoded message that was too large: tonic answers OUT_OF_RANGE, gRPC's convention (and
/// this service's) is RESOURCE_EXHAUSTED (`MESSAGE_TOO_LARGE`). Other statuses pass unchanged.
pub fn too_large_is_resource_exhausted(status: Status) -> Status {
    if status.code() == Code::OutOfRange && status.message().contains("message length too large") {
        return coded(Code::ResourceExhausted, "MESSAGE_TOO_LARGE", status.message().to_string());
    }
    status
}

/// A message tonic could not decode (invalid UTF-8 in a string, a malformed field) answers
/// INTERNAL; it is the client's error: INVALID_ARGUMENT (`UNDECODABLE_MESSAGE`) with a field
/// violation naming the field prost named (`case.department`). Other statuses pass unchanged.
pub fn undecodable_is_invalid_argument(status: Status) -> Status {
    const PREFIX: &str = "failed to decode Protobuf message: ";
    let Some(rest) = status.message().strip_prefix(PREFIX).filter(|_| status.code() == Code::Internal) else { return status };
    // prost writes the path as `Message.field: ` segments, innermost first, before the
    // description.
    let mut fields = Vec::new();
    let mut description = rest;
    while let Some((segment, tail)) = description.split_once(": ") {
        match segment.split_once('.') {
            Some((_, field)) if !segment.contains(' ') => fields.push(field.to_string()),
            _ => break,
        }
        description = tail;
    }
    // Innermost first: `Case.department: PreCheckCaseRequest.case: …`.
    fields.reverse();
    let field = if fields.is_empty() { "(message)".to_string() } else { fields.join(".") };
    let mut details = ErrorDetails::new();
    details.set_error_info("UNDECODABLE_MESSAGE", DOMAIN, HashMap::new());
    details.add_bad_request_violation(field.clone(), description.to_string());
    Status::with_error_details(Code::InvalidArgument, format!("{field}: {description}"), details)
}

/// A gRPC code's name as a reason: `InvalidArgument` → `INVALID_ARGUMENT`.
pub fn code_name(code: Code) -> String {
    let mut name = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

/// `status` with an ErrorInfo: one without gets the code's name as its reason (its field
/// violations, if any, are kept), so that every error a client sees carries a code.
pub fn with_a_code(status: Status) -> Status {
    if status.code() == Code::Ok || status.get_details_error_info().is_some() {
        return status;
    }
    let mut details = status.get_error_details();
    details.set_error_info(code_name(status.code()), DOMAIN, HashMap::new());
    Status::with_error_details(status.code(), status.message(), details)
}

/// The tower layer that applies [`too_large_is_resource_exhausted`],
/// [`undecodable_is_invalid_argument`] and [`with_a_code`] to statuses answered in the headers
/// (every error of a unary call, and of a stream that fails before its first message).
#[derive(Debug, Clone, Copy, Default)]
pub struct StatusRewrite;

impl<S> tower::Layer<S> for StatusRewrite {
    type Service = Rewritten<S>;
    fn layer(&self, inner: S) -> Rewritten<S> {
        Rewritten { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Rewritten<S> {
    inner: S,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B, R> tower::Service<http::Request<B>> for Rewritten<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Result<http::Response<R>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let future = self.inner.call(request);
        Box::pin(async move {
            let mut response = future.await?;
            let headers = response.headers_mut();
            let Some(status) = Status::from_header_map(headers).filter(|s| s.code() != Code::Ok) else {
                return Ok(response);
            };
            let rewritten = with_a_code(undecodable_is_invalid_argument(too_large_is_resource_exhausted(status.clone())));
            if rewritten.code() != status.code() || rewritten.details() != status.details() {
                for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
                    headers.remove(name);
                }
                let _ = rewritten.add_header(headers);
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_travel_in_error_info() {
        let status = invalid_field("BAD_REQUEST_ID", "request_id", "is bad");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.get_details_error_info().expect("error info").reason, "BAD_REQUEST_ID");
        assert_eq!(status.get_details_bad_request().expect("violations").field_violations[0].field, "request_id");
        assert!(check_request_id(&"x".repeat(MAX_REQUEST_ID_CHARS)).is_ok());
        assert!(check_request_id(&"x".repeat(MAX_REQUEST_ID_CHARS + 1)).is_err());
        assert!(check_request_id("a\0b").is_err());
        let big = too_large_is_resource_exhausted(Status::out_of_range(
            "Error, decoded message length too large: found 5 bytes, the limit is: 4 bytes",
        ));
        assert_eq!(big.code(), Code::ResourceExhausted);
        assert_eq!(too_large_is_resource_exhausted(Status::out_of_range("period")).code(), Code::OutOfRange);
        let undecodable = undecodable_is_invalid_argument(Status::internal(
            "failed to decode Protobuf message: Case.department: PreCheckCaseRequest.case: invalid string value: data is not UTF-8 encoded",
        ));
        assert_eq!(undecodable.code(), Code::InvalidArgument);
        let violation = &undecodable.get_details_bad_request().expect("violations").field_violations[0];
        assert_eq!(
            (violation.field.as_str(), violation.description.as_str()),
            ("case.department", "invalid string value: data is not UTF-8 encoded")
        );
        assert_eq!(undecodable_is_invalid_argument(Status::internal("boom")).code(), Code::Internal);
        assert_eq!(code_name(Code::InvalidArgument), "INVALID_ARGUMENT");
        let mut details = ErrorDetails::new();
        details.add_bad_request_violation("case.los", "is negative");
        let coded = with_a_code(Status::with_error_details(Code::InvalidArgument, "bad", details));
        assert_eq!(coded.get_details_error_info().expect("a code").reason, "INVALID_ARGUMENT");
        assert_eq!(coded.get_details_bad_request().expect("violations kept").field_violations[0].field, "case.los");
        assert_eq!(with_a_code(status.clone()).get_details_error_info().unwrap().reason, "BAD_REQUEST_ID", "a code is kept");
    }
}
