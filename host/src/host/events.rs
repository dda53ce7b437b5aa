//! What happens to deployments, said once where it happens: each event goes to the host's log
//! and to the audit log (capability `deploy`, which the audit metrics count), whoever asked for
//! it — a manifest file at start, the watcher, the API, a rollback, a canary's check. The
//! deployment history is written beside it, by the code that knows the component's bytes.

use super::DeployReport;
use crate::audit::{AuditEntry, AuditLog, Outcome};
use crate::deployments::Origin;

/// One thing that happened to an agent's deployment.
pub(super) enum DeployEvent<'a> {
    /// A version went live, or on trial beside the live one as a canary.
    Deployed {
        report: &'a DeployReport,
        source: &'a str,
        origin: Origin,
    },
    /// A deployment was refused: the running version, if any, keeps serving.
    Refused {
        agent: &'a str,
        /// Empty when the manifest named none that could be read.
        version: &'a str,
        source: &'a str,
        origin: Origin,
        error: &'a str,
    },
    /// A canary became the live version.
    Promoted {
        agent: &'a str,
        version: &'a str,
        replaced: &'a str,
        source: &'a str,
    },
    /// A canary's trial ended without promotion: the live version serves alone again.
    CanaryEnded {
        agent: &'a str,
        version: &'a str,
        source: &'a str,
        reason: &'a str,
    },
}

impl DeployEvent<'_> {
    /// Writes the event to the host's log and the audit log.
    pub(super) fn record(&self, audit: &AuditLog) {
        self.log();
        audit.record(self.audit_entry());
    }

    fn log(&self) {
        match *self {
            Self::Deployed {
                report,
                source,
                origin,
            } if report.canary > 0 => tracing::info!(
                agent = report.agent,
                canary = report.version,
                percent = report.canary,
                live = report.replaced,
                manifest = source,
                origin = origin.as_str(),
                "canary on trial"
            ),
            Self::Deployed {
                report,
                source,
                origin,
            } => tracing::info!(
                agent = report.agent,
                version = report.version,
                digest = report.digest,
                replaced = report.replaced,
                manifest = source,
                origin = origin.as_str(),
                "agent deployed"
            ),
            Self::Refused {
                agent,
                version,
                source,
                origin,
                error,
            } => tracing::error!(
                agent,
                version,
                manifest = source,
                origin = origin.as_str(),
                "agent refused; the running version, if any, keeps serving: {error}"
            ),
            Self::Promoted {
                agent,
                version,
                replaced,
                ..
            } => tracing::info!(agent, version, replaced, "canary promoted"),
            Self::CanaryEnded {
                agent,
                version,
                reason,
                ..
            } => tracing::warn!(agent, version, reason, "canary rolled back"),
        }
    }

    fn audit_entry(&self) -> AuditEntry {
        let (agent, version, source, outcome, detail) = match *self {
            Self::Deployed { report, source, .. } => (
                report.agent.as_str(),
                report.version.as_str(),
                source,
                Outcome::Allowed,
                report.diff.join("; "),
            ),
            Self::Refused {
                agent,
                version,
                source,
                error,
                ..
            } => (agent, version, source, Outcome::Denied, error.to_owned()),
            Self::Promoted {
                agent,
                version,
                replaced,
                source,
            } => (
                agent,
                version,
                source,
                Outcome::Allowed,
                format!("canary promoted, replacing {replaced}"),
            ),
            Self::CanaryEnded {
                agent,
                version,
                source,
                reason,
            } => (
                agent,
                version,
                source,
                Outcome::Denied,
                format!("canary rolled back: {reason}"),
            ),
        };
        AuditEntry::new(agent, version, "", "deploy", source, outcome).detail(detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(canary: u8) -> DeployReport {
        DeployReport {
            agent: "pricer".into(),
            version: "1.1.0".into(),
            digest: "sha256:00".into(),
            replaced: Some("1.0.0".into()),
            diff: vec!["+ publish a.b.v1".into(), "- http https://x".into()],
            canary,
        }
    }

    #[test]
    fn each_event_is_one_deploy_entry_saying_what_happened() {
        let deployed = report(0);
        let entry = DeployEvent::Deployed {
            report: &deployed,
            source: "agents/pricer.toml",
            origin: Origin::Api,
        }
        .audit_entry();
        assert_eq!(
            (
                entry.capability.as_str(),
                entry.outcome,
                entry.detail.as_str()
            ),
            (
                "deploy",
                Outcome::Allowed,
                "+ publish a.b.v1; - http https://x"
            )
        );
        let entry = DeployEvent::Refused {
            agent: "pricer",
            version: "1.1.0",
            source: "agents/pricer.toml",
            origin: Origin::Config,
            error: "widens its grants",
        }
        .audit_entry();
        assert_eq!(
            (entry.outcome, entry.detail.as_str()),
            (Outcome::Denied, "widens its grants")
        );
        let entry = DeployEvent::Promoted {
            agent: "pricer",
            version: "1.1.0",
            replaced: "1.0.0",
            source: "agents/pricer.toml",
        }
        .audit_entry();
        assert_eq!(entry.detail, "canary promoted, replacing 1.0.0");
        let entry = DeployEvent::CanaryEnded {
            agent: "pricer",
            version: "1.1.0",
            source: "agents/pricer.toml",
            reason: "3 of 10 failed",
        }
        .audit_entry();
        assert_eq!(
            (entry.outcome, entry.detail.as_str()),
            (Outcome::Denied, "canary rolled back: 3 of 10 failed")
        );
    }
}
