//! Ids derived from what they name, so that running an agent again on the
//! same data (a redelivered task, a follow-up round, an evaluation and then
//! a synthesis) reports the same ids: the workflow's `absorb` then skips
//! evidence it already has and turns a re-ranked hypothesis into a
//! `hypothesis_updated`, never a duplicate.
//!
//! A version 8 UUID over a 128-bit FNV-1a hash (the workflow's task ids are
//! built the same way): tiny, dependency-free and stable across releases.

use rootcause_diagnosis::{
    AgentKind, AgentTask, Category, Evidence, EvidenceId, HypothesisId, TaskId,
};
use uuid::Builder;

fn fnv(parts: &[&[u8]]) -> [u8; 16] {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut h = OFFSET;
    for part in parts {
        for b in part.iter().chain(b"/") {
            h ^= u128::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    }
    h.to_be_bytes()
}

fn derived_uuid(parts: &[&[u8]]) -> uuid::Uuid {
    Builder::from_custom_bytes(fnv(parts)).into_uuid()
}

/// What every task of one diagnosis shares and no other diagnosis of
/// another incident does: the tenant, the incident and the data source.
/// (A task carries no session id; two diagnoses of the very same incident
/// on the same data derive the same ids, which only ever meet inside one
/// session's state.)
#[must_use]
pub fn diagnosis_key(task: &AgentTask) -> [u8; 16] {
    let incident = serde_json::to_string(&task.incident).unwrap_or_default();
    fnv(&[
        task.tenant.0.as_bytes(),
        incident.as_bytes(),
        task.data.label().as_bytes(),
    ])
}

/// The id of a finding: its kind, label and statement within the diagnosis.
#[must_use]
pub fn evidence_id(key: &[u8; 16], e: &Evidence) -> EvidenceId {
    EvidenceId(derived_uuid(&[
        key,
        e.kind.as_str().as_bytes(),
        e.label.as_deref().unwrap_or_default().as_bytes(),
        e.summary.as_bytes(),
    ]))
}

/// Gives every finding of `evidence` its derived id.
pub fn assign_evidence_ids(key: &[u8; 16], evidence: &mut [Evidence]) {
    for e in evidence {
        e.id = evidence_id(key, e);
    }
}

/// The id of the hypothesis "`category` in `service`" within the diagnosis.
#[must_use]
pub fn hypothesis_id(key: &[u8; 16], service: &str, category: Category) -> HypothesisId {
    HypothesisId(derived_uuid(&[
        key,
        b"hypothesis",
        service.as_bytes(),
        category.as_str().as_bytes(),
    ]))
}

/// The task of a plan step for `agent`, derived from the planning task
/// (itself unique per session and round), so planning twice gives the
/// same steps and the workflow dispatches each once.
#[must_use]
pub fn step_task_id(planning: TaskId, round: u32, agent: AgentKind) -> TaskId {
    TaskId(derived_uuid(&[
        planning.0.as_bytes(),
        &round.to_be_bytes(),
        b"investigate",
        agent.as_str().as_bytes(),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rootcause_diagnosis::EvidenceKind;

    #[test]
    fn the_same_finding_gets_the_same_id_and_another_does_not() {
        let key = [7u8; 16];
        let a = Evidence {
            label: Some("L1".into()),
            ..Evidence::new(
                EvidenceKind::Log,
                "cart: new error",
                "bundle:logs/cart.jsonl",
            )
        };
        let b = Evidence {
            id: EvidenceId::new(),
            ..a.clone()
        };
        assert_eq!(evidence_id(&key, &a), evidence_id(&key, &b));
        let c = Evidence {
            summary: "cart: another error".into(),
            ..a.clone()
        };
        assert_ne!(evidence_id(&key, &a), evidence_id(&key, &c));
        assert_ne!(evidence_id(&key, &a), evidence_id(&[8u8; 16], &a));
        assert_eq!(
            hypothesis_id(&key, "cart", Category::BadDeploy),
            hypothesis_id(&key, "cart", Category::BadDeploy)
        );
        assert_ne!(
            hypothesis_id(&key, "cart", Category::BadDeploy),
            hypothesis_id(&key, "cart", Category::ConfigChange)
        );
        let t = TaskId::new();
        assert_ne!(
            step_task_id(t, 1, AgentKind::Log),
            step_task_id(t, 1, AgentKind::Metric)
        );
    }
}
