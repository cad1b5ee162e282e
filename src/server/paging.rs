//! What the list methods and handlers share: page sizes, opaque page tokens, and the mapping of
//! storage and task failures to statuses.

use crate::store::StoreError;
use tonic::Status;

/// The page size of a request: 0 means 100; at most 1000; negative is an error.
pub fn page_size(requested: i32) -> Result<usize, Status> {
    match requested {
        0 => Ok(100),
        n if n < 0 => Err(super::errors::invalid_field("BAD_PAGE_SIZE", "page_size", "must not be negative")),
        n => Ok((n as usize).min(1000)),
    }
}

/// An opaque page token for the last key of a page (hex of the key's bytes).
pub fn encode_token(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The key of a page token; `None` for the first page.
pub fn decode_token(token: &str) -> Result<Option<String>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || super::errors::invalid_field("BAD_PAGE_TOKEN", "page_token", "is not a token this service issued");
    if token.len() % 2 != 0 || !token.is_ascii() {
        return Err(bad());
    }
    let bytes: Result<Vec<u8>, _> = (0..token.len()).step_by(2).map(|i| u8::from_str_radix(&token[i..i + 2], 16)).collect();
    let key = String::from_utf8(bytes.map_err(|_| bad())?).map_err(|_| bad())?;
    // Keys never hold NUL (the store refuses it): a token with one was not issued here.
    if key.contains('\0') {
        return Err(bad());
    }
    Ok(Some(key))
}

/// A page token for the last (hospital, case id) of a page.
pub fn encode_case_token(hospital: &str, case_id: &str) -> String {
    encode_token(&format!("{hospital}\u{1f}{case_id}"))
}

/// The (hospital, case id) of a token made by [`encode_case_token`]; `None` for the first page.
pub fn decode_case_token(token: &str) -> Result<Option<(String, String)>, Status> {
    let Some(key) = decode_token(token)? else { return Ok(None) };
    let (hospital, case_id) = key
        .split_once('\u{1f}')
        .ok_or_else(|| super::errors::invalid_field("BAD_PAGE_TOKEN", "page_token", "is not a token this service issued"))?;
    Ok(Some((hospital.to_string(), case_id.to_string())))
}

/// The hospital a list request's `parent` names — `hospitals/{hospital_id}`, or `hospitals/-`
/// (every hospital: `None`) — once the caller's role may list it.
pub fn parent_hospital(role: &super::auth::Role, parent: &str) -> Result<Option<String>, Status> {
    let hospital = match parent.strip_prefix("hospitals/") {
        Some("-") => None,
        Some(h) if !h.is_empty() && !h.contains('/') => Some(h.to_string()),
        _ => {
            return Err(super::errors::invalid_field(
                "BAD_PARENT",
                "parent",
                format!("{parent:?} is not hospitals/{{hospital_id}} or hospitals/-"),
            ))
        }
    };
    match (&hospital, role) {
        (Some(h), _) => role.check(h)?,
        (None, super::auth::Role::Hospital(_)) => {
            return Err(super::errors::coded(
                tonic::Code::PermissionDenied,
                "FUND_OFFICE_ONLY",
                "only a fund-office token may list every hospital",
            ))
        }
        (None, super::auth::Role::FundOffice) => {}
    }
    Ok(hospital)
}

/// A storage failure: UNAVAILABLE (`STORE_UNAVAILABLE`: the client may retry), or
/// INVALID_ARGUMENT (`TEXT_HAS_NUL`) for text no backend can store (a retry never helps).
pub fn unavailable(error: StoreError) -> Status {
    let code = match error {
        StoreError::InvalidText(_) => tonic::Code::InvalidArgument,
        StoreError::Backend(_) => tonic::Code::Unavailable,
    };
    super::errors::coded(code, error.code(), format!("storage: {error}"))
}

/// A blocking task that did not finish: INTERNAL (`TASK_FAILED`).
pub fn task_failed(error: tokio::task::JoinError) -> Status {
    super::errors::coded(tonic::Code::Internal, "TASK_FAILED", format!("task failed: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        let key = "H001\u{1f}C 9/é";
        assert_eq!(decode_token(&encode_token(key)).unwrap().as_deref(), Some(key));
        assert_eq!(decode_token("").unwrap(), None);
        for bad in ["abc", "zz", "ffff", "é1", "4800"] {
            assert_eq!(decode_token(bad).unwrap_err().code(), tonic::Code::InvalidArgument, "{bad}");
        }
        assert_eq!(page_size(0).unwrap(), 100);
        assert_eq!(page_size(5000).unwrap(), 1000);
        assert!(page_size(-1).is_err());
    }
}
