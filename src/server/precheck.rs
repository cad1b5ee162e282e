//! PreCheckService: group and price a case before it is submitted, with warnings.

use super::auth::{role, Role};
use super::convert::{case_from_proto, invalid_argument, FieldError};
use super::metrics::Metrics;
use super::proto::{self, pre_check_service_server::PreCheckService};
use super::AppState;
use crate::audit::{check_case, AuditCase};
use crate::case::Case;
use crate::pricing::CaseCategory;
use crate::settlement::monthly_point_value;
use crate::units::{format_yuan, Points, Yuan};
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

pub struct PreCheck {
    pub state: Arc<AppState>,
}

fn category(category: CaseCategory) -> proto::CaseCategory {
    match category {
        CaseCategory::Normal => proto::CaseCategory::Normal,
        CaseCategory::HighOutlier => proto::CaseCategory::HighOutlier,
        CaseCategory::LowOutlier => proto::CaseCategory::LowOutlier,
        CaseCategory::SpecialReview => proto::CaseCategory::SpecialReview,
        CaseCategory::BedDay => proto::CaseCategory::BedDay,
        CaseCategory::Exempt => proto::CaseCategory::Exempt,
        CaseCategory::Ungrouped => proto::CaseCategory::Ungrouped,
    }
}

/// The pre-check of one valid case.
pub fn precheck(state: &AppState, case: &Case, include_trace: bool) -> proto::PreCheckCaseResponse {
    let snapshot = state.versions.active();
    let policy = snapshot.policy();
    let assessment = snapshot.scorer.assess(policy, case);
    let points = &assessment.points;
    let reasons = points.reasons(policy, case);
    let factors = points
        .factors
        .iter()
        .zip(reasons)
        .map(|(f, reason)| proto::Factor { name: f.name.to_string(), value: f.value.normalize().to_string(), reason })
        .collect();
    let mut warnings = Vec::new();
    let mut warn = |kind: &str, message: String| warnings.push(proto::Warning { kind: kind.into(), score: String::new(), message });
    match points.category {
        CaseCategory::HighOutlier | CaseCategory::LowOutlier | CaseCategory::SpecialReview | CaseCategory::Ungrouped => {
            warn(points.category.as_str(), points.explain(policy, case))
        }
        _ => {}
    }
    if !matches!(assessment.status, "SUCCESS" | "CORE" | "COMPREHENSIVE") {
        warn("not_grouped", format!("grouping status {}", assessment.status));
    }
    for flag in check_case(&policy.audit, &AuditCase::new(case, &assessment)) {
        warnings.push(proto::Warning { kind: flag.kind.as_str().into(), score: flag.score.to_string(), message: flag.evidence });
    }
    // A [[hospital_overrides]] point value replaces the fund's budget point value for the case.
    let point_value = case.fund.and_then(|fund| match policy.override_point_value(case, fund) {
        Some(value) => Some(crate::units::PointValue(value)),
        None => monthly_point_value(policy, fund).ok().map(|r| r.value),
    });
    let payment = point_value.map(|v| Points(points.points.value()).at(v).to_fen());
    let fund_payment = payment.map(|p| p - Yuan(case.patient_paid.unwrap_or_default()));
    proto::PreCheckCaseResponse {
        case_id: case.case_id.clone(),
        status: assessment.status.to_string(),
        group: assessment.group.to_string(),
        family: assessment.family.to_string(),
        trace: if include_trace { snapshot.scorer.trace(policy, case) } else { Vec::new() },
        category: category(points.category) as i32,
        base_score: points.base_score.normalize().to_string(),
        cost_ratio: points.cost_ratio.map(|r| crate::units::round_half_up(r, 4).normalize().to_string()).unwrap_or_default(),
        factors,
        points: crate::units::format_points(points.points.value(), policy.points_decimals),
        point_value: point_value.map(|v| crate::units::format_point_value(v.0, policy.point_value_decimals)).unwrap_or_default(),
        estimated_payment: payment.map(|p| format_yuan(p.0)).unwrap_or_default(),
        estimated_fund_payment: fund_payment.map(|p| format_yuan(p.0)).unwrap_or_default(),
        warnings,
        field_violations: Vec::new(),
        policy: snapshot.policy.name.clone(),
        table_set: snapshot.table_set.name.clone(),
        patient_share: None,
    }
}

/// [`precheck`], with a panic (a bug on some input) answered as INTERNAL (`PRECHECK_PANICKED`)
/// rather than a dropped call (which the client sees as CANCELLED).
fn guarded(state: &AppState, case: &Case, include_trace: bool) -> Result<proto::PreCheckCaseResponse, Status> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| precheck(state, case, include_trace))).map_err(|_| {
        super::errors::coded(
            tonic::Code::Internal,
            "PRECHECK_PANICKED",
            format!("case {:?}: the pre-check failed on this input", case.case_id),
        )
    })
}

/// Validates the request's case and the caller's right to it.
fn checked_case(role: &Role, request: &proto::PreCheckCaseRequest) -> Result<Case, Status> {
    let message = request
        .case
        .as_ref()
        .ok_or_else(|| invalid_argument("case is required", &[FieldError { field: "case".into(), description: "is required".into() }]))?;
    // A hospital pre-checks its own cases (the hospital id defaults to the token's); the right
    // to the case is checked before its fields.
    let hospital_id = match (role, message.hospital_id.as_str()) {
        (Role::Hospital(own), "") => own.clone(),
        (_, id) => id.to_string(),
    };
    role.check(&hospital_id)?;
    let mut case = case_from_proto(message).map_err(|errors| invalid_argument("the case has invalid fields", &errors))?;
    if !hospital_id.is_empty() {
        case.hospital_id = Some(hospital_id);
    }
    Ok(case)
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<proto::PreCheckCaseResponse, Status>> + Send>>;

#[tonic::async_trait]
impl PreCheckService for PreCheck {
    async fn pre_check_case(&self, request: Request<proto::PreCheckCaseRequest>) -> Result<Response<proto::PreCheckCaseResponse>, Status> {
        let role = role(&request)?;
        let request = request.into_inner();
        let metrics = &self.state.metrics;
        let case = checked_case(&role, &request).inspect_err(|_| Metrics::add(&metrics.precheck_errors, 1))?;
        Metrics::add(&metrics.precheck_requests, 1);
        let mut response = guarded(&self.state, &case, request.include_trace)?;
        response.patient_share = Some(super::patient_share::estimate(&self.state, &request, &case));
        Ok(Response::new(response))
    }

    type BatchPreCheckCasesStream = ResponseStream;

    /// Reached only when the service is mounted without [`super::PreCheckRoute`] (which decodes
    /// each message on its own): the same batch.
    async fn batch_pre_check_cases(
        &self,
        request: Request<Streaming<proto::PreCheckCaseRequest>>,
    ) -> Result<Response<Self::BatchPreCheckCasesStream>, Status> {
        let role = role(&request)?;
        let incoming = request.into_inner().map(|m| m.map(PreCheckFrame::from));
        Ok(Response::new(batch(self.state.clone(), role, incoming)))
    }
}

/// One `PreCheckCaseRequest` as it comes off the wire, its case still encoded: a message whose
/// case cannot be decoded is answered with a field violation and the stream goes on.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PreCheckFrame {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub case: Option<Vec<u8>>,
    #[prost(bool, tag = "2")]
    pub include_trace: bool,
}

impl From<proto::PreCheckCaseRequest> for PreCheckFrame {
    fn from(message: proto::PreCheckCaseRequest) -> PreCheckFrame {
        PreCheckFrame { case: message.case.map(|c| prost::Message::encode_to_vec(&c)), include_trace: message.include_trace }
    }
}

/// The answer of a message that cannot be checked: its field violations, the stream goes on.
fn rejected(case_id: String, violations: Vec<proto::FieldViolation>) -> proto::PreCheckCaseResponse {
    proto::PreCheckCaseResponse { case_id, field_violations: violations, ..Default::default() }
}

/// A batch pre-check: one answer per message, in order. A message that cannot be decoded or
/// checked answers with field violations; another hospital's case (PERMISSION_DENIED) or a
/// broken stream ends it.
pub fn batch(
    state: Arc<AppState>,
    role: Role,
    mut incoming: impl Stream<Item = Result<PreCheckFrame, Status>> + Send + Unpin + 'static,
) -> ResponseStream {
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        while let Some(item) = incoming.next().await {
            let frame = match item {
                Ok(frame) => frame,
                Err(status) => {
                    let _ = sender.send(Err(super::errors::too_large_is_resource_exhausted(status))).await;
                    break;
                }
            };
            let case = match frame.case.as_deref().map(<proto::Case as prost::Message>::decode) {
                Some(Err(e)) => {
                    let violation = proto::FieldViolation { field: "case".into(), description: format!("cannot be decoded: {e}") };
                    if sender.send(Ok(rejected(String::new(), vec![violation]))).await.is_err() {
                        break;
                    }
                    continue;
                }
                Some(Ok(case)) => Some(case),
                None => None,
            };
            let request = proto::PreCheckCaseRequest { case, include_trace: frame.include_trace, ..Default::default() };
            let response = match checked_case(&role, &request) {
                Ok(case) => {
                    Metrics::add(&state.metrics.precheck_requests, 1);
                    guarded(&state, &case, request.include_trace)
                }
                Err(status) if status.code() == tonic::Code::PermissionDenied => Err(status),
                Err(status) => {
                    // The field errors its status carries; a message without a case gets `case`.
                    let violations = tonic_types::StatusExt::get_details_bad_request(&status)
                        .map(|bad| bad.field_violations)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|v| proto::FieldViolation { field: v.field, description: v.description })
                        .collect::<Vec<_>>();
                    let violations = if violations.is_empty() {
                        vec![proto::FieldViolation { field: "case".into(), description: status.message().to_string() }]
                    } else {
                        violations
                    };
                    Ok(rejected(request.case.as_ref().map(|c| c.case_id.clone()).unwrap_or_default(), violations))
                }
            };
            let stop = response.is_err();
            if sender.send(response).await.is_err() || stop {
                break;
            }
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))
}
