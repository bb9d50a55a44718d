//! Ids derived from what they name, so that running an agent again on the
//! same data (a redelivered task, a follow-up round, an evaluation and then
//! a synthesis) reports the same ids: the workflow's `absorb` then skips
//! evidence it already has and turns a re-ranked hypothesis into a
//! `hypothesis_updated`, never a duplicate.
//!
//! A version 8 UUID over a 128-bit FNV-1a hash (the workflow's task ids are
//! built the same way): tiny, dependency-free and stable across releases.

use rootcause_diagnosis::{AgentTask, Category, Evidence, EvidenceId, HypothesisId, SessionId};
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

/// The key every id of one diagnosis derives from: its session id, so two
/// diagnoses never share an evidence or hypothesis id.
#[must_use]
pub fn diagnosis_key(task: &AgentTask) -> [u8; 16] {
    fnv(&[b"diagnosis", task.session_id.0.as_bytes()])
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

/// The id of the hypothesis "the fault is in `service`, of `category`" in
/// one diagnosis: the session, the service in lower case and the category.
/// The offline and the LLM coordinator both name hypotheses with it, so an
/// evaluation and a synthesis of one diagnosis (by either) agree and the
/// workflow records a re-ranking as an update, not a duplicate.
#[must_use]
pub fn hypothesis_id(session_id: SessionId, service: &str, category: Category) -> HypothesisId {
    let service = service.trim().to_lowercase();
    HypothesisId(derived_uuid(&[
        b"hypothesis",
        session_id.0.as_bytes(),
        service.as_bytes(),
        category.as_str().as_bytes(),
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
        let s = SessionId::new();
        assert_eq!(
            hypothesis_id(s, "cart", Category::BadDeploy),
            hypothesis_id(s, " Cart ", Category::BadDeploy)
        );
        assert_ne!(
            hypothesis_id(s, "cart", Category::BadDeploy),
            hypothesis_id(s, "cart", Category::ConfigChange)
        );
    }
}
