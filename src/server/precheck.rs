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
use crate::units::{Points, Yuan};
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
        points: points.points.value().to_string(),
        point_value: point_value.map(|v| v.to_string()).unwrap_or_default(),
        estimated_payment: payment.map(|p| p.0.to_string()).unwrap_or_default(),
        estimated_fund_payment: fund_payment.map(|p| p.0.to_string()).unwrap_or_default(),
        warnings,
        field_violations: Vec::new(),
        policy: snapshot.policy.name.clone(),
        table_set: snapshot.table_set.name.clone(),
    }
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
        Ok(Response::new(precheck(&self.state, &case, request.include_trace)))
    }

    type BatchPreCheckCasesStream = ResponseStream;

    async fn batch_pre_check_cases(
        &self,
        request: Request<Streaming<proto::PreCheckCaseRequest>>,
    ) -> Result<Response<Self::BatchPreCheckCasesStream>, Status> {
        let role = role(&request)?;
        let mut incoming = request.into_inner();
        let state = self.state.clone();
        let (sender, receiver) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            while let Some(item) = incoming.next().await {
                let response = match item {
                    Err(status) => Err(status),
                    Ok(request) => match checked_case(&role, &request) {
                        Ok(case) => {
                            Metrics::add(&state.metrics.precheck_requests, 1);
                            Ok(precheck(&state, &case, request.include_trace))
                        }
                        Err(status) if status.code() == tonic::Code::PermissionDenied => Err(status),
                        Err(_) => {
                            // A bad record gets its field errors in the response; the stream goes on.
                            let errors = request.case.as_ref().map(|c| case_from_proto(c).err().unwrap_or_default()).unwrap_or_default();
                            Ok(proto::PreCheckCaseResponse {
                                case_id: request.case.as_ref().map(|c| c.case_id.clone()).unwrap_or_default(),
                                field_violations: errors.iter().map(proto::FieldViolation::from).collect(),
                                ..Default::default()
                            })
                        }
                    },
                };
                let stop = response.is_err();
                if sender.send(response).await.is_err() || stop {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))))
    }
}
